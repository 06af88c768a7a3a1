package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/robfig/cron/v3"
)

// cronParser reads five cron fields, or a descriptor such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// errCronZone refuses a time zone written into a cron expression: the
// zone has its own key (retention.timezone, windows[].timezone).
var errCronZone = errors.New("a time zone (CRON_TZ=, TZ=) is not read here: set the timezone key next to it")

// ParseCron reads a retention schedule or a window's cron: five fields
// such as "0 3 * * *", or a descriptor such as @daily. It is the one way
// into robfig/cron for what a file says: robfig/cron v3.0.1 (unmaintained)
// panics inside Parse on a CRON_TZ= or TZ= prefix with no field after it,
// so that prefix is refused before the library sees it, and any other
// panic of the library is an error too.
func ParseCron(spec string) (sched cron.Schedule, err error) {
	if strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=") {
		return nil, errCronZone
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("not a cron expression (%v)", r)
		}
	}()
	return cronParser.Parse(spec)
}

package slackbot

import (
	"os"
	"testing"

	"github.com/deploybot/deploybot/internal/testclock"
)

// A failure says which fixtures' day it happened on, to run it again.
func TestMain(m *testing.M) { os.Exit(testclock.Main(m)) }

package releases_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

func TestErrorMessageAndCode(t *testing.T) {
	aws := errors.New("operation error CloudFront: UpdateDistribution, https response error StatusCode: 403, api error AccessDenied: not allowed")
	locked := &releases.LockedError{Lock: releases.Lock{Site: "www", Holder: "bob", Reason: "launch", Since: testclock.At(9, 0)}}
	cases := []struct {
		name string
		err  error
		msg  string
		code string
	}{
		{"nil", nil, "", ""},
		{"domain", releases.Errorf(releases.ENOTFOUND, "site www has no release v9"), "site www has no release v9", releases.ENOTFOUND},
		{"domain wrapping AWS", releases.Errorf(releases.ECONFLICT, "not flipped: %w", aws), "not flipped: " + aws.Error(), releases.ECONFLICT},
		{"AWS, wrapped with context", fmt.Errorf("reading distribution E1: %w", aws), "reading distribution E1: " + aws.Error(), releases.EINTERNAL},
		{"locked", locked, locked.Error(), releases.ECONFLICT},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := releases.ErrorMessage(c.err); got != c.msg {
				t.Errorf("message %q, want %q", got, c.msg)
			}
			if got := releases.ErrorCode(c.err); got != c.code {
				t.Errorf("code %q, want %q", got, c.code)
			}
		})
	}
}

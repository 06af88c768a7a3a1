package cli

import (
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestErrorTextSaysHintsAsFlags(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{releases.Errorf(releases.ECONFLICT, "refusing to promote v2 of www: 1 file(s) missing").WithHint(releases.HintNoVerify),
			"refusing to promote v2 of www: 1 file(s) missing (use --no-verify to promote anyway)"},
		{fmt.Errorf("promote: %w", releases.Errorf(releases.ECONFLICT, "v1 is older than the live v2").WithHint(releases.HintGoBack)),
			"v1 is older than the live v2 (promote --rollback)"},
		{releases.Errorf(releases.ECONFLICT, "site www is frozen"), "site www is frozen"},
	} {
		if got := errorText(c.err); got != c.want {
			t.Errorf("errorText(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

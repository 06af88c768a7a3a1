package cloud

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploybot/deploybot/releases"
)

// awsProblem wraps an AWS error for a person: a refusal names the
// permission the call needs and where the policy comes from, rather than
// the SDK's text alone.
func awsProblem(what, permission string, err error) error {
	if isAccessDenied(err) {
		return releases.Errorf(releases.EUNAUTHORIZED, "%s: access denied: the caller needs %s (deploybot iam-policy prints the policy of the bot; setup needs an administrator's): %w", what, permission, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isAccessDenied reports an AWS refusal for want of permission.
func isAccessDenied(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "AllAccessDisabled":
			return true
		}
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden
}

// NoSuchBucket reports whether err is S3 saying the bucket does not exist:
// a site whose bucket setup has not created yet.
func NoSuchBucket(err error) bool { return isCode(err, "NoSuchBucket") }

// isCode reports an AWS error with one of codes.
func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	for _, c := range codes {
		if ae.ErrorCode() == c {
			return true
		}
	}
	return false
}

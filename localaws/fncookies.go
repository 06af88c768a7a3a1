package localaws

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// What a viewer-response function sees of an answer and what CloudFront
// makes of what it returns, per the event structure
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html):
// Set-Cookie headers are not in response.headers but in response.cookies,
// by name, with the attributes apart and a repeated name's values in
// multiValue; on the way back each cookie becomes a Set-Cookie header
// again. A function that adds a header CloudFront does not let functions
// add fails the answer with 502
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html#function-restrictions-headers).

// fnResponseOf is an answer as a viewer-response event carries it.
func fnResponseOf(status int, h http.Header) fnResponse {
	in := fnResponse{StatusCode: status, StatusDescription: http.StatusText(status), Headers: map[string]fnValue{}, Cookies: map[string]fnValue{}}
	for k, v := range h {
		if !strings.EqualFold(k, "Set-Cookie") {
			in.Headers[strings.ToLower(k)] = fnValue{Value: v[0]}
			continue
		}
		for _, line := range v {
			pair, attrs, _ := strings.Cut(line, ";")
			name, value, _ := strings.Cut(strings.TrimSpace(pair), "=")
			c := fnValue{Value: value, Attributes: strings.TrimSpace(attrs)}
			if prev, ok := in.Cookies[name]; ok {
				if len(prev.MultiValue) == 0 {
					prev.MultiValue = []fnValue{{Value: prev.Value, Attributes: prev.Attributes}}
				}
				prev.MultiValue = append(prev.MultiValue, c)
				in.Cookies[name] = prev
				continue
			}
			in.Cookies[name] = c
		}
	}
	return in
}

// headerOfFnResponse is the header a viewer-response function's answer
// goes out with, or an error for a header the function may not add (in
// is what it was given). A cookie with a multiValue goes out as each of
// its values (the stand-in does not model a function that changes value
// but not multiValue).
func headerOfFnResponse(res *fnResponse, in fnResponse) (http.Header, error) {
	out := http.Header{}
	for k, v := range res.Headers {
		if _, had := in.Headers[k]; !had && disallowedHeader(k) {
			return nil, fmt.Errorf("%w: the viewer-response function added header %s", errDisallowedHeader, k)
		}
		out.Set(k, v.Value)
	}
	for _, line := range setCookieLines(res.Cookies) {
		out.Add("Set-Cookie", line)
	}
	return out, nil
}

// setCookieLines are a function's cookies as Set-Cookie values, one per
// value of a multiValue cookie (CloudFront Functions event structure:
// cookies in a response).
func setCookieLines(cookies map[string]fnValue) []string {
	var out []string
	for name, c := range cookies {
		values := c.MultiValue
		if len(values) == 0 {
			values = []fnValue{c}
		}
		for _, v := range values {
			line := name + "=" + v.Value
			if v.Attributes != "" {
				line += "; " + v.Attributes
			}
			out = append(out, line)
		}
	}
	return out
}

// errDisallowedHeader is a function's answer that fails CloudFront's
// validation: 502 Bad Gateway to the viewer.
var errDisallowedHeader = errors.New("a header CloudFront does not let functions add")

// functionErrorStatus is the status a viewer gets when the
// viewer-response function fails: 502 for an answer CloudFront's
// validation refuses, else 503 (the function threw or could not run).
func functionErrorStatus(err error) int {
	if errors.Is(err, errDisallowedHeader) {
		return http.StatusBadGateway
	}
	return http.StatusServiceUnavailable
}

// disallowedHeader reports a header that edge functions are not shown and
// cannot add (the list in edge-function-restrictions-all, "Disallowed
// headers"; a name ending in "-" is a prefix).
func disallowedHeader(name string) bool {
	name = strings.ToLower(name)
	for _, d := range []string{"connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
		"trailer", "upgrade", "x-accel-buffering", "x-accel-charset", "x-accel-limit-rate", "x-accel-redirect", "x-amz-cf-",
		"x-amzn-auth", "x-amzn-cf-billing", "x-amzn-cf-id", "x-amzn-cf-xff", "x-amzn-errortype", "x-amzn-fle-profile",
		"x-amzn-header-count", "x-amzn-header-order", "x-amzn-lambda-integration-tag", "x-amzn-requestid", "x-cache", "x-edge-"} {
		if name == d || strings.HasSuffix(d, "-") && strings.HasPrefix(name, d) {
			return true
		}
	}
	return false
}

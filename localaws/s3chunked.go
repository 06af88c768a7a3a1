// Request bodies: the aws-chunked encoding the SDK streams uploads in, and
// the checksum a client sends with it.

package localaws

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// readBody returns the request payload, decoding the aws-chunked encoding
// the SDK uses for streamed uploads with trailing checksums.
func readBody(r *http.Request) io.Reader {
	sha := r.Header.Get("X-Amz-Content-Sha256")
	if strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") || strings.HasPrefix(sha, "STREAMING-") {
		return &chunkedReader{r: bufio.NewReader(r.Body)}
	}
	return r.Body
}

// sentChecksum returns the checksum value of algo the client sent, in a
// header or in the aws-chunked trailer.
func sentChecksum(r *http.Request, body io.Reader, algo, header string) string {
	if header != "" {
		return header
	}
	if c, ok := body.(*chunkedReader); ok {
		return c.trailers["x-amz-checksum-"+algo]
	}
	return ""
}

type chunkedReader struct {
	r        *bufio.Reader
	trailers map[string]string
	left     int64
	done     bool
	err      error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		if c.err != nil {
			return 0, c.err
		}
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.err = fmt.Errorf("aws-chunked: reading chunk header: %w", err)
			return 0, c.err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue // the CRLF after a chunk's data
		}
		sizeHex, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
		if err != nil || n < 0 {
			c.err = fmt.Errorf("aws-chunked: bad chunk size %q", sizeHex)
			return 0, c.err
		}
		if n == 0 {
			c.done = true
			c.readTrailers()
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// readTrailers reads "name:value" lines after the last chunk (the
// checksum the SDK computed while streaming).
func (c *chunkedReader) readTrailers() {
	c.trailers = map[string]string{}
	for {
		line, err := c.r.ReadString('\n')
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok {
			c.trailers[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
		if err != nil {
			return
		}
	}
}

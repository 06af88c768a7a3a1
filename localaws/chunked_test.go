package localaws

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

func encodeChunked(data []byte, chunk int, trailer string) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		n := min(chunk, len(data))
		fmt.Fprintf(&b, "%x;chunk-signature=abc\r\n", n)
		b.Write(data[:n])
		b.WriteString("\r\n")
		data = data[n:]
	}
	b.WriteString("0\r\n")
	if trailer != "" {
		b.WriteString(trailer + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func TestChunkedReader(t *testing.T) {
	data := []byte(strings.Repeat("deploybot ", 1000))
	for _, size := range []int{1, 7, 64, 8192, 100000} {
		r := &chunkedReader{r: bufio.NewReader(bytes.NewReader(encodeChunked(data, size, "x-amz-checksum-crc32:AAAAAA==")))}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("chunk size %d: %d bytes, %v", size, len(got), err)
		}
		if r.trailers["x-amz-checksum-crc32"] != "AAAAAA==" {
			t.Fatalf("trailers %v", r.trailers)
		}
	}
	for _, bad := range []string{"zz\r\nabc", "5\r\nab", "-1\r\n"} {
		if _, err := io.ReadAll(&chunkedReader{r: bufio.NewReader(strings.NewReader(bad))}); err == nil {
			t.Errorf("%q decoded without error", bad)
		}
	}
}

func FuzzChunkedReader(f *testing.F) {
	f.Add(encodeChunked([]byte("hello world"), 4, "x-amz-checksum-sha256:abc"))
	f.Add([]byte("0\r\n\r\n"))
	f.Add([]byte("ffffffffffffffff\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, _ := io.ReadAll(&chunkedReader{r: bufio.NewReader(bytes.NewReader(in))})
		if len(got) > len(in) {
			t.Fatalf("decoded %d bytes from %d", len(got), len(in))
		}
	})
}

package front

import (
	"fmt"
	"strings"
	"testing"
)

// verdicts feeds in to a new framing in pieces of size step and returns
// what it found, one string per head.
func verdicts(in string, step int) []string {
	f := newFraming(1 << 16)
	for len(in) > 0 {
		n := min(step, len(in))
		f.feed([]byte(in[:n]))
		in = in[n:]
	}
	var out []string
	for {
		v, ok := f.next()
		if !ok || v.err == errFramingLost {
			return out
		}
		if v.err != nil {
			out = append(out, "refused: "+v.err.Error())
			return out
		}
		out = append(out, v.method+" "+v.target)
	}
}

func TestFraming(t *testing.T) {
	const get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name, in string
		want     []string
	}{
		{"one GET", get, []string{"GET /a"}},
		{"pipelined", get + "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n", []string{"GET /a", "HEAD /b"}},
		{"bare LF", "GET /a HTTP/1.1\nHost: x\n\n" + get, []string{"GET /a", "GET /a"}},
		{"empty line first", "\r\n" + get, []string{"GET /a"}},
		{"body skipped", "POST /p HTTP/1.1\r\nContent-Length: 28\r\n\r\n" + get + get, []string{"POST /p", "GET /a"}},
		{"chunked skipped", "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1c;ext=1\r\n" + get + "\r\n0\r\nTrailer: t\r\n\r\n" + get, []string{"POST /p", "GET /a"}},
		{"TE case", "POST /p HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n" + get, []string{"POST /p", "GET /a"}},
		{"CL and TE", "POST /p HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"refused: both Content-Length and Transfer-Encoding"}},
		{"two CL", "POST /p HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc", []string{"refused: more than one Content-Length"}},
		{"two TE", "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"refused: more than one Transfer-Encoding"}},
		{"TE list", "POST /p HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", []string{`refused: Transfer-Encoding "gzip, chunked" is not chunked`}},
		{"TE in HTTP/1.0", "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []string{`refused: Transfer-Encoding in an "HTTP/1.0" request`}},
		{"CL in HTTP/1.0", "POST /p HTTP/1.0\r\nContent-Length: 2\r\n\r\nab" + get, []string{"POST /p", "GET /a"}},
		{"CL sign", "POST /p HTTP/1.1\r\nContent-Length: +3\r\n\r\n", []string{`refused: bad Content-Length "+3"`}},
		{"CL hex", "POST /p HTTP/1.1\r\nContent-Length: 0x3\r\n\r\n", []string{`refused: bad Content-Length "0x3"`}},
		{"obs-fold", "POST /p HTTP/1.1\r\nX: a\r\n b\r\n\r\n", []string{"refused: folded header line (obs-fold)"}},
		{"space in name", "POST /p HTTP/1.1\r\nContent-Length : 3\r\n\r\n", []string{`refused: white space in the header name "Content-Length "`}},
		{"no colon", "GET /a HTTP/1.1\r\nHost x\r\n\r\n", []string{`refused: header line without a colon: "Host x"`}},
		{"bad request line", "GET/a\r\n\r\n", []string{`refused: malformed request line "GET/a"`}},
		{"bad chunk size", "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", []string{"POST /p", `refused: bad chunk size "zz"`}},
		{"chunk without CRLF", "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", []string{"POST /p", "refused: chunk not followed by CRLF"}},
		{"second smuggles", get + "POST /p HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", []string{"GET /a", "refused: both Content-Length and Transfer-Encoding"}},
		{"upgrade stops", "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x05hello" + get, []string{"GET /ws"}},
		{"h2c preface stops", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04", []string{"PRI *"}},
		{"head too large", "GET /a HTTP/1.1\r\nX: " + strings.Repeat("a", 1<<16) + "\r\n\r\n", []string{"refused: request head too large"}},
	}
	for _, tt := range tests {
		for _, step := range []int{1, 3, 7, 1 << 20} {
			got := verdicts(tt.in, step)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%s (fed %d bytes at a time): got %q, want %q", tt.name, step, got, tt.want)
			}
		}
	}
}

func TestFramingNextWithoutHead(t *testing.T) {
	f := newFraming(1024)
	f.feed([]byte("GET /a HTTP/1.1\r\n"))
	if v, ok := f.next(); !ok || v.err != errFramingLost {
		t.Fatalf("next before a whole head: %v, %v; want errFramingLost", v, ok)
	}
}

// FuzzFraming: any bytes, cut anywhere, give the same verdicts as when fed
// at once, and never a panic or an unbounded queue.
func FuzzFraming(f *testing.F) {
	f.Add("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 5)
	f.Add("POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n", 11)
	f.Add("POST /p HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 2)
	f.Add("GET / HTTP/1.1\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1\r\n\r\n", 1)
	f.Fuzz(func(t *testing.T, in string, step int) {
		if step <= 0 {
			step = 1
		}
		whole, cut := verdicts(in, len(in)+1), verdicts(in, step)
		if fmt.Sprint(whole) != fmt.Sprint(cut) {
			t.Fatalf("fed whole: %q; fed %d at a time: %q", whole, step, cut)
		}
		if len(whole) > maxVerdicts+1 {
			t.Fatalf("%d verdicts queued", len(whole))
		}
	})
}

package gateway

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestLeanHTTP runs the main REST flows with Config.LeanHTTP: every path
// byte for byte, admission, the table as the only destination, retry on
// a killed replica, auth and rate limits, and mirroring. (.ci/run also
// runs the package's whole suite that way: SHOAL_TEST_LEAN_HTTP=1.)
func TestLeanHTTP(t *testing.T) {
	leanHTTP = true
	defer func() { leanHTTP = false }()
	for name, test := range map[string]func(*testing.T){
		"ProxyPaths":              TestProxyPaths,
		"Admission":               TestAdmission,
		"NoRequestLeavesTheTable": TestNoRequestLeavesTheTable,
		"RetryKilledReplica":      TestRetryKilledReplica,
		"AuthAndRateLimit":        TestAuthAndRateLimit,
		"Mirror":                  TestMirror,
		"PinAndSticky":            TestPinAndSticky,
	} {
		t.Run(name, test)
	}
	// The listener is package h1's: its refusals are JSON.
	rep := startReplica(t, "1")
	tg := startGateway(t, Config{}, oneRevision(rep))
	c, err := net.Dial("tcp", strings.TrimPrefix(tg.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /v2/health/live HTTP/1.1\r\n\r\n") // no Host
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.HasPrefix(string(b), `{"error":"h1: missing required Host header"`) {
		t.Errorf("request without Host: %d %s, want h1's JSON 400", resp.StatusCode, b)
	}
	if _, err := New(Config{Source: StaticSource{Table: &Table{}}, LeanHTTP: true, TLS: &tls.Config{}}); err == nil || !strings.Contains(err.Error(), "plain text only") {
		t.Errorf("LeanHTTP with TLS: err %v, want a refusal", err)
	}
}

package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"strings"
	"testing"
)

func TestGatewayAndTLSUsage(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"gateway"}, 2, "give one of -routes FILE, -control URL and -docker"},
		{[]string{"gateway", "-docker", "-routes", "r.yaml"}, 2, "give one of"},
		{[]string{"gateway", "-routes", "r.yaml", "-docker-network", "shoal"}, 2, "-docker-network needs -docker"},
		{[]string{"gateway", "-docker", "-http", "127.0.0.1:0", "-grpc", ""}, 1, "docker: engine"}, // DOCKER_HOST below
		{[]string{"gateway", "-routes", "r.yaml", "-control", "http://127.0.0.1:1"}, 2, "give one of"},
		{[]string{"gateway", "-control", "ftp://127.0.0.1:1"}, 2, "want http(s)://HOST:PORT"},
		{[]string{"gateway", "-control", "http://127.0.0.1:1", "-replica-cert", "c.pem"}, 2, "need -replica-ca"},
		{[]string{"gateway", "-control", "http://127.0.0.1:1", "-replica-ca", "/definitely/not/here"}, 1, "no such file"},
		{[]string{"gateway", "-control", "http://127.0.0.1:1", "-tls-cert", "c.pem"}, 2, "go together"},
		{[]string{"gateway", "-control", "http://127.0.0.1:1", "-gc-percent", "-5"}, 2, "want a positive percent"},
		{[]string{"up", "-gc-percent", "-1"}, 2, "want a positive percent"},
		{[]string{"serve", "-tls-key", "k.pem"}, 2, "go together"},
		{[]string{"serve", "-tls-client-ca", "ca.pem"}, 2, "needs -tls-cert"},
	}
	t.Setenv("DOCKER_HOST", "tcp://127.0.0.1:1") // no engine there
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := Run(context.Background(), c.args, io.Discard, &stderr); code != c.code || !strings.Contains(stderr.String(), c.inStderr) {
			t.Errorf("Run(%q) = %d, stderr %q; want %d and %q", c.args, code, stderr.String(), c.code, c.inStderr)
		}
	}
}

// TestTLSFiles writes a CA, a server and a client certificate as PEM
// files and checks that serverTLS and clientTLS read them into
// configurations that complete a mutual-TLS handshake, and that a client
// without its certificate is refused.
func TestTLSFiles(t *testing.T) {
	ca := newTestCA(t)
	caFile := ca.File
	leaf := func(name string, usage x509.ExtKeyUsage) (string, string) { return ca.leaf(name, usage) }
	sCert, sKey := leaf("replica", x509.ExtKeyUsageServerAuth)
	cCert, cKey := leaf("gateway", x509.ExtKeyUsageClientAuth)

	srv, err := serverTLS(sCert, sKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	handshake := func(cli *tls.Config) error {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		done := make(chan error, 1)
		go func() {
			s := tls.Server(a, srv)
			err := s.Handshake()
			s.Close() // close_notify: the client's read below ends
			done <- err
		}()
		cli.ServerName = "replica"
		c := tls.Client(b, cli)
		cerr := c.Handshake()
		if cerr == nil { // TLS 1.3: the server judges the client certificate after the client is done
			_, cerr = c.Read(make([]byte, 1))
			if cerr == io.EOF {
				cerr = nil
			}
		}
		b.Close()
		if serr := <-done; serr != nil {
			return serr
		}
		return cerr
	}
	withCert, err := clientTLS(caFile, cCert, cKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(withCert); err != nil {
		t.Errorf("mutual TLS handshake: %v", err)
	}
	withoutCert, err := clientTLS(caFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(withoutCert); err == nil {
		t.Errorf("a client without a certificate was accepted")
	}
	if _, err := clientTLS(sKey, "", ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("clientTLS(a key file as CA) = %v, want a no-certificate error", err)
	}
}

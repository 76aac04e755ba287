package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// testPKI is a certificate authority with a server certificate for
// 127.0.0.1 and a client certificate, generated for one test.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := &testPKI{pool: x509.NewCertPool(),
		server: leaf(2, "replica", x509.ExtKeyUsageServerAuth),
		client: leaf(3, "gateway", x509.ExtKeyUsageClientAuth)}
	p.pool.AddCert(ca)
	return p
}

// TestReplicaTLS runs a replica that serves REST and gRPC over TLS and
// requires client certificates (mutual TLS), and checks that a gateway
// with the CA and a client certificate reaches it both ways, while one
// without the client certificate, one that does not trust the CA, and one
// in plain text do not.
func TestReplicaTLS(t *testing.T) {
	pki := newTestPKI(t)
	rep := startReplicaTLS(t, "1", &tls.Config{
		Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12,
		ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	good := &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}
	tg := startGateway(t, Config{ReplicaTLS: good, ProbeInterval: -1, Retries: -1}, oneRevision(rep))
	if rev, version := tg.infer(t); rev != "r1" || version != "1" {
		t.Errorf("REST over mutual TLS answered by %q version %q, want r1 version 1", rev, version)
	}
	r, err := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC).ModelInfer(t.Context(), irisGRPCRequest())
	if err != nil || len(r.Outputs) == 0 {
		t.Errorf("gRPC over mutual TLS: %v, %v", r, err)
	}

	for _, c := range []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", &tls.Config{RootCAs: pki.pool}},
		{"CA not trusted", &tls.Config{Certificates: []tls.Certificate{pki.client}, RootCAs: x509.NewCertPool()}},
		{"wrong server name", &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}, ServerName: "elsewhere"}},
		{"plain text", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := startGateway(t, Config{ReplicaTLS: c.cfg, ProbeInterval: -1, Retries: -1, Timeout: 5 * time.Second}, oneRevision(rep))
			// 502 (no handshake); in plain text, the replica's own 400.
			if code, _, b := bad.post(t, "/v2/models/iris/infer", irisBody); code != 502 && (c.cfg != nil || code != 400) {
				t.Errorf("REST = %d %s, want 502 (400 in plain text)", code, b)
			}
			if _, err := inferencepb.NewGRPCInferenceServiceClient(bad.GRPC).ModelInfer(t.Context(), irisGRPCRequest()); err == nil {
				t.Errorf("gRPC succeeded, want an error")
			}
		})
	}
}

// irisGRPCRequest is the iris request over gRPC.
func irisGRPCRequest() *inferencepb.ModelInferRequest {
	return &inferencepb.ModelInferRequest{
		ModelName: "iris",
		Inputs: []*inferencepb.ModelInferRequest_InferInputTensor{{
			Name: "input", Datatype: "FP32", Shape: []int64{1, 4},
			Contents: &inferencepb.InferTensorContents{Fp32Contents: []float32{5.1, 3.5, 1.4, 0.2}},
		}},
	}
}

package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// TestTLS serves REST and gRPC over TLS with a certificate and checks
// that clients trusting it get through and plain-text clients do not.
func TestTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gateway"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	rep := startReplica(t, "1")
	tg := startGateway(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}, oneRevision(rep))
	httpsURL := strings.Replace(tg.URL, "http://", "https://", 1)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := client.Post(httpsURL+"/v2/models/iris/infer", "application/json", strings.NewReader(irisBody))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("HTTPS infer = %d %s (TLS %v)", resp.StatusCode, b, resp.TLS != nil)
	}
	if resp, err := http.Post(tg.URL+"/v2/models/iris/infer", "application/json", strings.NewReader(irisBody)); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP to the TLS listener got 200")
		}
		resp.Body.Close()
	}

	conn, err := grpc.NewClient(tg.GRPC.Target(), grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(pool, "")))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r, err := inferencepb.NewGRPCInferenceServiceClient(conn).ModelReady(t.Context(), &inferencepb.ModelReadyRequest{Name: "iris"})
	if err != nil || !r.Ready {
		t.Errorf("gRPC over TLS ModelReady = %v, %v", r, err)
	}
}

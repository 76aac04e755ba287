package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-ml/shoal/internal/oip/inferencepb"
)

// TestAuthAndRateLimit checks API keys over REST and gRPC: 401 without or
// with a wrong key, 403 outside the key's models, 429 past its rate.
func TestAuthAndRateLimit(t *testing.T) {
	rep := startReplica(t, "1")
	cfg := Config{Keys: []APIKey{
		{Name: "team-a", SHA256: HashKey("secret-a"), Models: []string{"iris"}, Rate: 0.001, Burst: 3},
		{Name: "team-b", SHA256: HashKey("secret-b"), Models: []string{"other"}},
		{Name: "admin", SHA256: HashKey("secret-admin"), Models: []string{"*"}},
	}}
	tg := startGateway(t, cfg, oneRevision(rep))
	for _, tc := range []struct {
		name string
		hdr  []string
		want int
	}{
		{"no key", nil, http.StatusUnauthorized},
		{"wrong key", []string{"Authorization", "Bearer nope"}, http.StatusUnauthorized},
		{"other model's key", []string{"X-Api-Key", "secret-b"}, http.StatusForbidden},
		{"admin", []string{"Authorization", "Bearer secret-admin"}, http.StatusOK},
		{"team-a 1", []string{"X-Api-Key", "secret-a"}, http.StatusOK},
		{"team-a 2", []string{"Authorization", "bearer secret-a"}, http.StatusOK},
		{"team-a 3", []string{"X-Api-Key", "secret-a"}, http.StatusOK},
		{"team-a past its burst", []string{"X-Api-Key", "secret-a"}, http.StatusTooManyRequests},
		{"admin unlimited", []string{"X-Api-Key", "secret-admin"}, http.StatusOK},
	} {
		code, h, b := tg.post(t, "/v2/models/iris/infer", irisBody, tc.hdr...)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
		}
		if code == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			t.Errorf("%s: 429 without Retry-After", tc.name)
		}
	}
	if got := tg.metric(t, `shoal_gateway_rejected_total{model="iris",reason="rate_limited"}`); got != 1 {
		t.Errorf("rate_limited = %v, want 1", got)
	}

	cl := inferencepb.NewGRPCInferenceServiceClient(tg.GRPC)
	req := &inferencepb.ModelReadyRequest{Name: "iris"}
	if _, err := cl.ModelReady(context.Background(), req); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without key: %v, want Unauthenticated", err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-api-key", "secret-b")
	if _, err := cl.ModelReady(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC with team-b: %v, want PermissionDenied", err)
	}
	ctx = metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer secret-admin")
	if r, err := cl.ModelReady(ctx, req); err != nil || !r.Ready {
		t.Errorf("gRPC with admin: %v, %v", r, err)
	}
}

func TestTokenBucket(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := tokenBucket{rate: 10, burst: 2, tokens: 2}
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{
		{0, true}, {0, true}, {0, false}, // the burst
		{50 * time.Millisecond, false},                     // half a token
		{100 * time.Millisecond, true},                     // one token
		{100 * time.Millisecond, false},                    // spent
		{10 * time.Second, true}, {10 * time.Second, true}, // refilled to the burst only
		{10 * time.Second, false}, {5 * time.Second, false}, // time going back adds nothing
	} {
		if got := b.take(t0.Add(tc.at)); got != tc.want {
			t.Errorf("#%d take(%v) = %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

func TestRetryBudget(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBudget(0.2, 1) // cap: 10 retries
	b.last = t0
	n := 0
	for b.retry(t0) {
		n++
	}
	if n != 10 {
		t.Fatalf("initial balance allowed %d retries, want 10", n)
	}
	for range 10 {
		b.request(t0)
	}
	n = 0
	for b.retry(t0) {
		n++
	}
	if n != 2 {
		t.Errorf("10 requests at 20%% paid for %d retries, want 2", n)
	}
	if !b.retry(t0.Add(time.Second)) || b.retry(t0.Add(time.Second)) {
		t.Errorf("1 retry/s floor: want exactly one retry after 1s")
	}
}

func TestParseKeysAndMatchKey(t *testing.T) {
	keys, err := ParseKeys([]byte("- name: ops\n  sha256: " + strings.ToUpper(HashKey("s3cret")) + "\n- name: ci\n  sha256: " + HashKey("other") + "\n  models: [\"*\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key, want string
	}{{"s3cret", "ops"}, {"other", "ci"}, {"nope", ""}, {"", ""}} {
		k, ok := MatchKey(keys, tc.key)
		if k.Name != tc.want || ok != (tc.want != "") {
			t.Errorf("MatchKey(%q) = %q, %v, want %q", tc.key, k.Name, ok, tc.want)
		}
	}
	for _, tc := range []struct{ name, yaml string }{
		{"not a list", "name: ops"},
		{"unknown field", "- name: ops\n  sha256: " + HashKey("x") + "\n  role: admin\n"},
		{"no name", "- sha256: " + HashKey("x") + "\n"},
		{"short digest", "- name: ops\n  sha256: abc\n"},
		{"negative rate", "- name: ops\n  sha256: " + HashKey("x") + "\n  rate: -1\n"},
	} {
		if _, err := ParseKeys([]byte(tc.yaml)); err == nil {
			t.Errorf("%s: ParseKeys accepted %q", tc.name, tc.yaml)
		}
	}
}

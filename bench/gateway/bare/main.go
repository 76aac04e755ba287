// Command bare is the CPU baseline of bench/gateway/run.sh: a bare Go
// net/http server answering every POST with a fixed OIP response of the
// size the iris model returns, reading the request body first. The
// gateway's CPU time per request is compared with this server's. It is a
// benchmark fixture, not a server to deploy.
//
//	bare -addr 127.0.0.1:18093
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18093", "listen `address`")
	flag.Parse()
	resp := []byte(`{"model_name":"iris","model_version":"1","outputs":[{"name":"label","datatype":"INT64","shape":[1],"data":[0]},{"name":"probabilities","datatype":"FP32","shape":[1,3],"data":[0.98283964,0.0103464695,0.006813851]}]}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(resp)
	})
	if err := http.ListenAndServe(*addr, h); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

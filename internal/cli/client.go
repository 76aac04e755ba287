package cli

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/shoal-ml/shoal/api/v1alpha1"
	"github.com/shoal-ml/shoal/internal/control"
	"github.com/shoal-ml/shoal/internal/control/store"
)

// client talks to the control API of `shoal up`.
type client struct {
	base  string // http://host:port
	hc    *http.Client
	token string // sent as a Bearer token; empty: none
}

// clientFlags adds -control and -o to fl.
func clientFlags(fl *flag.FlagSet) (addr, output *string) {
	def := os.Getenv("SHOAL_CONTROL")
	if def == "" {
		def = defaultControlAddr
	}
	addr = fl.String("control", def, "control API `address` (env SHOAL_CONTROL)")
	output = fl.String("o", "table", "output `format`: table, json or yaml")
	return addr, output
}

// controlAuthFlags adds -control-token-file and -control-ca to fl. The
// func it returns, called after fl.Parse, reads them: the token of the
// file, else $SHOAL_CONTROL_TOKEN (empty: none), and the TLS
// configuration trusting the CA file (nil: the system's roots).
func controlAuthFlags(fl *flag.FlagSet) func() (string, *tls.Config, error) {
	tokenFile := fl.String("control-token-file", "", "`file` holding the token for a control API with keys (shoal up -control-keys; default: env SHOAL_CONTROL_TOKEN)")
	ca := fl.String("control-ca", "", "CA certificates `file` (PEM) to trust for an https:// control API")
	return func() (string, *tls.Config, error) {
		token := os.Getenv("SHOAL_CONTROL_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return "", nil, err
			}
			if token = strings.TrimSpace(string(b)); token == "" {
				return "", nil, fmt.Errorf("-control-token-file %s: empty", *tokenFile)
			}
		}
		if *ca == "" {
			return token, nil, nil
		}
		tc, err := clientTLS(*ca, "", "")
		return token, tc, err
	}
}

// newClient returns a client of the control API at addr (host:port or a
// URL) that sends token and, when tc is set, trusts its CAs.
func newClient(addr, token string, tc *tls.Config) *client {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	if tc != nil {
		hc.Transport = tlsTransport(tc)
	}
	return &client{base: strings.TrimRight(addr, "/"), hc: hc, token: token}
}

// tlsTransport is net/http's default transport trusting tc's CAs.
func tlsTransport(tc *tls.Config) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tc
	return t
}

// do sends a request and decodes a JSON answer into out (nil: discard);
// an error answer becomes an error with the API's message.
func (c *client) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("control API: %w (is `shoal up` running?)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("control API: %s", resp.Status)
	}
	if out == nil {
		return nil
	}
	if p, ok := out.(*[]byte); ok {
		*p = b
		return nil
	}
	return json.Unmarshal(b, out)
}

// parseClient parses a client command's flags; the positional arguments
// must number between lo and hi.
func parseClient(name, usage string, args []string, stderr io.Writer, lo, hi int, extra func(*flag.FlagSet)) (*client, string, []string, error) {
	fl := flag.NewFlagSet(name, flag.ContinueOnError)
	fl.SetOutput(stderr)
	addr, output := clientFlags(fl)
	auth := controlAuthFlags(fl)
	if extra != nil {
		extra(fl)
	}
	fl.Usage = func() {
		fmt.Fprintf(stderr, "Usage: shoal %s\n\nFlags:\n", usage)
		fl.PrintDefaults()
	}
	// Flags may come before or after the positional arguments
	// (shoal get iris -o yaml).
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, "", nil, err
			}
			return nil, "", nil, usageError{err}
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if len(pos) < lo || len(pos) > hi {
		return nil, "", nil, usageError{fmt.Errorf("usage: shoal %s", usage)}
	}
	switch *output {
	case "table", "json", "yaml":
	default:
		return nil, "", nil, usageError{fmt.Errorf("-o %q: want table, json or yaml", *output)}
	}
	token, tc, err := auth()
	if err != nil {
		return nil, "", nil, err
	}
	return newClient(*addr, token, tc), *output, pos, nil
}

// printAs writes v as JSON or YAML, or calls table.
func printAs(w io.Writer, format string, v any, table func(*tabwriter.Writer)) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	table(tw)
	return tw.Flush()
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var file string
	c, _, _, err := parseClient("apply", "apply -f FILE", args, stderr, 0, 0, func(fl *flag.FlagSet) {
		fl.StringVar(&file, "f", "", "`file` of ModelDeployments (YAML; - for stdin)")
	})
	if err != nil {
		return err
	}
	if file == "" {
		return usageError{errors.New("-f is required")}
	}
	var objs []v1alpha1.ModelDeployment
	if file == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		if objs, err = v1alpha1.Decode(b); err != nil {
			return err
		}
	} else if objs, err = readObjects(file); err != nil {
		return err
	}
	var body bytes.Buffer
	for _, d := range objs {
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		body.WriteString("---\n")
		body.Write(b)
		body.WriteString("\n")
	}
	var out []v1alpha1.ModelDeployment
	if err := c.do(ctx, http.MethodPost, "/v1/deployments", "application/yaml", body.Bytes(), &out); err != nil {
		return err
	}
	for _, d := range out {
		fmt.Fprintf(stdout, "modeldeployment/%s applied (generation %d, revision %s)\n", d.Metadata.Name, d.Metadata.Generation, control.RevisionName(&d))
	}
	return nil
}

func runGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, format, rest, err := parseClient("get", "get [NAME]", args, stderr, 0, 1, nil)
	if err != nil {
		return err
	}
	var ds []v1alpha1.ModelDeployment
	if len(rest) == 1 {
		var d v1alpha1.ModelDeployment
		if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+rest[0], "", nil, &d); err != nil {
			return err
		}
		if format != "table" {
			return printAs(stdout, format, d, nil)
		}
		ds = []v1alpha1.ModelDeployment{d}
	} else if err := c.do(ctx, http.MethodGet, "/v1/deployments", "", nil, &ds); err != nil {
		return err
	}
	return printAs(stdout, format, ds, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "NAME\tREADY\tREVISION\tTRAFFIC\tSTATUS\tAGE")
		for _, d := range ds {
			cur := control.RevisionName(&d)
			ready, traffic := "0/0", ""
			for _, r := range d.Status.Revisions {
				if r.Name == cur {
					ready = fmt.Sprintf("%d/%d", r.ReadyReplicas, r.DesiredReplicas)
				}
				if r.TrafficPercent > 0 {
					traffic += fmt.Sprintf("%s=%d%% ", strings.TrimPrefix(r.Name, d.Metadata.Name+"-"), r.TrafficPercent)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Metadata.Name, ready, strings.TrimPrefix(cur, d.Metadata.Name+"-"),
				strings.TrimSpace(traffic), readyReason(d), age(d.Metadata.CreationTimestamp))
		}
	})
}

func readyReason(d v1alpha1.ModelDeployment) string {
	for _, c := range d.Status.Conditions {
		if c.Type == "Ready" {
			return c.Reason
		}
	}
	return "Pending"
}

func age(t *time.Time) string {
	if t == nil {
		return ""
	}
	return time.Since(*t).Round(time.Second).String()
}

func runDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, format, rest, err := parseClient("describe", "describe NAME", args, stderr, 1, 1, nil)
	if err != nil {
		return err
	}
	name := rest[0]
	var d v1alpha1.ModelDeployment
	var reps []control.Replica
	var evs []store.ObjectEvent
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+name, "", nil, &d); err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+name+"/replicas", "", nil, &reps); err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+name+"/events", "", nil, &evs); err != nil {
		return err
	}
	all := map[string]any{"deployment": d, "replicas": reps, "events": evs}
	return printAs(stdout, format, all, func(tw *tabwriter.Writer) {
		s := d.Spec
		fmt.Fprintf(tw, "Name:\t%s\nModel:\t%s %s\nRevision:\t%s\nURL:\t%s\n", d.Metadata.Name, s.Model.URI, s.Model.Format, control.RevisionName(&d), d.Status.URL)
		fmt.Fprintf(tw, "Scaling:\tmin %d, max %d, %s target %g\n", *s.Scaling.MinReplicas, s.Scaling.MaxReplicas, s.Scaling.Metric, s.Scaling.Target)
		fmt.Fprintf(tw, "Rollout:\t%s (maxSurge %s, maxUnavailable %s)", s.Rollout.Strategy, s.Rollout.MaxSurge, s.Rollout.MaxUnavailable)
		if d.Metadata.Annotations[control.AnnotationPaused] == "true" {
			fmt.Fprint(tw, ", paused")
		}
		fmt.Fprintln(tw)
		if t := s.Traffic; len(t.Split) > 0 || t.Mirror != nil {
			var parts []string
			for _, sp := range t.Split {
				parts = append(parts, fmt.Sprintf("%s %d%%", sp.Revision, sp.Weight))
			}
			if m := t.Mirror; m != nil {
				parts = append(parts, fmt.Sprintf("mirror %g%% to %s", m.Percent, m.Revision))
			}
			fmt.Fprintf(tw, "Traffic:\t%s\n", strings.Join(parts, ", "))
		}
		if r := s.Resources; r.CPU != "" || r.Memory != "" {
			fmt.Fprintf(tw, "Resources:\tcpu %s, memory %s\n", cmp.Or(r.CPU, "-"), cmp.Or(r.Memory, "-"))
		}
		fmt.Fprintln(tw, "\nREVISION\tDESIRED\tREADY\tTRAFFIC")
		for _, r := range d.Status.Revisions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d%%\n", r.Name, r.DesiredReplicas, r.ReadyReplicas, r.TrafficPercent)
		}
		fmt.Fprintln(tw, "\nCONDITION\tSTATUS\tREASON\tMESSAGE")
		for _, c := range d.Status.Conditions {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		fmt.Fprintln(tw, "\nREPLICA\tPID\tHTTP\tREADY\tRESTARTS\tSTARTED")
		for _, r := range reps {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%d\t%s\n", r.ID, r.PID, r.HTTP, r.Ready, r.Restarts, r.Started.Format(time.RFC3339))
		}
		fmt.Fprintln(tw, "\nTIME\tTYPE\tREASON\tMESSAGE")
		for _, e := range evs[max(0, len(evs)-10):] {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.Format(time.TimeOnly), e.Type, e.Reason, e.Message)
		}
	})
}

func runDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, _, rest, err := parseClient("delete", "delete NAME", args, stderr, 1, 1, nil)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/v1/deployments/"+rest[0], "", nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "modeldeployment/%s deleted\n", rest[0])
	return nil
}

func runScale(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, _, rest, err := parseClient("scale", "scale NAME REPLICAS", args, stderr, 2, 2, nil)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(rest[1])
	if err != nil || n < 0 {
		return usageError{fmt.Errorf("replicas %q: want a count >= 0", rest[1])}
	}
	body, _ := json.Marshal(map[string]int{"replicas": n})
	if err := c.do(ctx, http.MethodPost, "/v1/deployments/"+rest[0]+"/scale", "application/json", body, nil); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "modeldeployment/%s scaled to %d\n", rest[0], n)
	return nil
}

func runRollout(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "rollout status|pause|resume|promote|undo NAME"
	c, format, rest, err := parseClient("rollout", usage, args, stderr, 2, 2, nil)
	if err != nil {
		return err
	}
	cmd, name := rest[0], rest[1]
	switch cmd {
	case "status":
		var d v1alpha1.ModelDeployment
		if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+name, "", nil, &d); err != nil {
			return err
		}
		return printAs(stdout, format, d.Status, func(tw *tabwriter.Writer) {
			fmt.Fprintf(tw, "revision %s\n", control.RevisionName(&d))
			for _, c := range d.Status.Conditions {
				fmt.Fprintf(tw, "%s=%s\t%s\t%s\n", c.Type, c.Status, c.Reason, c.Message)
			}
			for _, r := range d.Status.Revisions {
				fmt.Fprintf(tw, "%s\tready %d/%d\ttraffic %d%%\n", r.Name, r.ReadyReplicas, r.DesiredReplicas, r.TrafficPercent)
			}
		})
	case "pause", "resume", "undo", "promote":
		if err := c.do(ctx, http.MethodPost, "/v1/deployments/"+name+"/rollout/"+cmd, "", nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "modeldeployment/%s: rollout %s\n", name, cmd)
		return nil
	}
	return usageError{fmt.Errorf("usage: shoal %s", usage)}
}

func runLogs(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var tail int
	c, _, rest, err := parseClient("logs", "logs [-tail N] NAME", args, stderr, 1, 1, func(fl *flag.FlagSet) {
		fl.IntVar(&tail, "tail", 100, "last `N` lines of each replica")
	})
	if err != nil {
		return err
	}
	var b []byte
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/deployments/%s/logs?tail=%d", rest[0], tail), "", nil, &b); err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, format, rest, err := parseClient("events", "events NAME", args, stderr, 1, 1, nil)
	if err != nil {
		return err
	}
	var evs []store.ObjectEvent
	if err := c.do(ctx, http.MethodGet, "/v1/deployments/"+rest[0]+"/events", "", nil, &evs); err != nil {
		return err
	}
	return printAs(stdout, format, evs, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, "TIME\tTYPE\tREASON\tMESSAGE")
		for _, e := range evs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.Time.Local().Format(time.DateTime), e.Type, e.Reason, e.Message)
		}
	})
}

// runPredict sends an inference request for the model to the gateway that
// the control API names: DATA is an OIP v2 JSON request inline or @FILE.
func runPredict(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, _, rest, err := parseClient("predict", "predict NAME JSON|@FILE", args, stderr, 2, 2, nil)
	if err != nil {
		return err
	}
	body := []byte(rest[1])
	if strings.HasPrefix(rest[1], "@") {
		if body, err = os.ReadFile(rest[1][1:]); err != nil {
			return err
		}
	}
	var info struct{ Gateway string }
	if err := c.do(ctx, http.MethodGet, "/v1/info", "", nil, &info); err != nil {
		return err
	}
	g := &client{base: info.Gateway, hc: c.hc} // not the control API's token
	var out []byte
	if err := g.do(ctx, http.MethodPost, "/v2/models/"+rest[0]+"/infer", "application/json", body, &out); err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	_, err = stdout.Write(out)
	return err
}

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// runMain runs the command line in-process and returns stdout, stderr and the exit code.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(t.Context(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func fixtureDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// parseMetrics parses the Prometheus text format strictly.
func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("metrics do not parse as the Prometheus text format: %v", err)
	}
	return mfs
}

// gaugeValue finds the one series of name whose labels include want.
func gaugeValue(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	mf := mfs[name]
	if mf == nil {
		t.Fatalf("no metric %s", name)
	}
	var found []float64
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		ok := true
		for k, v := range want {
			if labels[k] != v {
				ok = false
			}
		}
		if ok {
			found = append(found, m.GetGauge().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, want, len(found))
	}
	return found[0]
}

// jsonSummary is the part of sync --json the metrics are checked against.
type jsonSummary struct {
	ItemsAdded   int     `json:"items_added"`
	ItemsKept    int     `json:"items_kept"`
	Fetched      int     `json:"files_fetched"`
	FetchedBytes int64   `json:"bytes_fetched"`
	Seconds      float64 `json:"seconds"`
	Stages       []struct {
		Name string `json:"name"`
	} `json:"stages"`
}

func TestMetricsTextfile(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "mirror")
	prom := filepath.Join(dir, "textfile", "ssmirror.prom")
	if err := os.Mkdir(filepath.Dir(prom), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--keyring", filepath.Join(fx, "keys", "test-keyring.gpg"), "--json", "--metrics-textfile", prom,
		filepath.Join(fx, "stream"), target, "arch=amd64", "release=noble", "--max=1"}
	before := time.Now()
	stdout, stderr, code := runMain(t, args...)
	if code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	var sum jsonSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.ItemsAdded == 0 || sum.Fetched == 0 {
		t.Fatalf("the run did nothing: %s", stdout)
	}
	f, err := os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	mfs := parseMetrics(t, f)
	f.Close()
	lbl := map[string]string{"target": target}
	for name, want := range map[string]float64{
		"ssmirror_last_run_error":           0,
		"ssmirror_last_run_items_added":     float64(sum.ItemsAdded),
		"ssmirror_last_run_items_kept":      float64(sum.ItemsKept),
		"ssmirror_last_run_files_fetched":   float64(sum.Fetched),
		"ssmirror_last_run_fetched_bytes":   float64(sum.FetchedBytes),
		"ssmirror_last_run_files_copied":    0,
		"ssmirror_last_run_items_removed":   0,
		"ssmirror_last_run_deleted_objects": 0,
	} {
		if got := gaugeValue(t, mfs, name, lbl); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	success := gaugeValue(t, mfs, "ssmirror_last_success_timestamp_seconds", lbl)
	if success < unixSeconds(before) {
		t.Errorf("last success %v is before the run started (%v)", success, unixSeconds(before))
	}
	if d := gaugeValue(t, mfs, "ssmirror_last_run_duration_seconds", lbl); d <= 0 {
		t.Errorf("duration %v", d)
	}
	for _, s := range sum.Stages {
		gaugeValue(t, mfs, "ssmirror_last_run_stage_duration_seconds", map[string]string{"target": target, "stage": s.Name})
	}
	if len(sum.Stages) == 0 {
		t.Error("no stages in the JSON summary")
	}

	// A failed run (the wrong keyring) says so and carries the last success time over.
	args[1] = filepath.Join(fx, "keys", "other-keyring.gpg")
	if _, stderr, code := runMain(t, args...); code != 1 {
		t.Fatalf("sync with a wrong keyring: exit %d: %s", code, stderr)
	}
	f, err = os.Open(prom)
	if err != nil {
		t.Fatal(err)
	}
	mfs = parseMetrics(t, f)
	f.Close()
	if got := gaugeValue(t, mfs, "ssmirror_last_run_error", lbl); got != 1 {
		t.Errorf("after a failure, ssmirror_last_run_error = %v", got)
	}
	if got := gaugeValue(t, mfs, "ssmirror_last_success_timestamp_seconds", lbl); got != success {
		t.Errorf("after a failure, last success = %v, want the previous %v", got, success)
	}
	// Nothing but the textfile in its directory: the temporary file was renamed or removed.
	ents, err := os.ReadDir(filepath.Dir(prom))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("textfile directory holds %d entries, want 1", len(ents))
	}
}

func TestMetricsFlagErrors(t *testing.T) {
	fx := fixtureDir(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		flag, value, want string
	}{
		{"--metrics-push", "localhost:9091", "--metrics-push wants the http(s) URL of a Pushgateway"},
		{"--metrics-textfile", filepath.Join(dir, "no", "such", "x.prom"), "its directory does not exist"},
	} {
		_, stderr, code := runMain(t, "--no-verify", tt.flag, tt.value, filepath.Join(fx, "stream"), filepath.Join(dir, "m"))
		if code != 2 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want exit 2 and %q", tt.flag, tt.value, code, stderr, tt.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "m")); err == nil {
			t.Errorf("%s %s: the target was written before the flag was refused", tt.flag, tt.value)
		}
	}
}

// TestMetricsPushSecretNotShown pushes to a closed port with credentials in the URL: the mirror
// is published, so the run exits 0 with a warning naming the push, and the password appears
// nowhere in the output.
func TestMetricsPushSecretNotShown(t *testing.T) {
	fx := fixtureDir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	const password = "pgw-Pa55word-xyzzy"
	stdout, stderr, code := runMain(t, "--no-verify", "--metrics-push", "http://ops:"+password+"@"+addr,
		filepath.Join(fx, "stream"), filepath.Join(t.TempDir(), "m"), "os=pxelinux")
	if code != 0 || !strings.Contains(stderr, "mirrored, but the metrics export failed") || !strings.Contains(stderr, "metrics push to http://"+addr) {
		t.Errorf("exit %d, stderr %q; want exit 0 and a warning naming the push", code, stderr)
	}
	if strings.Contains(stdout+stderr, password) {
		t.Errorf("the password appears in the output:\n%s\n%s", stdout, stderr)
	}
	if !strings.Contains(stdout, "mirrored") {
		t.Errorf("the summary should say the mirror was published: %s", stdout)
	}
}

// startPushgateway runs Debian's prometheus-pushgateway on a free loopback port and returns its
// URL. It skips when the binary is absent, unless CI=true.
func startPushgateway(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-pushgateway")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prometheus-pushgateway is not installed (CI=true: install Debian's prometheus-pushgateway)")
		}
		t.Skip("prometheus-pushgateway is not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--persistence.file=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("pushgateway log:\n%s", logs.String())
		}
	})
	base := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if i == 200 {
			t.Fatalf("pushgateway at %s not ready: %v\n%s", base, err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	return parseMetrics(t, resp.Body)
}

func TestMetricsPushgateway(t *testing.T) {
	base := startPushgateway(t)
	fx := fixtureDir(t)
	target := filepath.Join(t.TempDir(), "mirror")
	args := []string{"--keyring", filepath.Join(fx, "keys", "test-keyring.gpg"), "--json", "--metrics-push", base,
		filepath.Join(fx, "stream"), target, "arch=amd64", "--max=1"}
	stdout, stderr, code := runMain(t, args...)
	if code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	var sum jsonSummary
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatal(err)
	}
	lbl := map[string]string{"job": "ssmirror", "target": target}
	mfs := scrape(t, base)
	if got := gaugeValue(t, mfs, "ssmirror_last_run_items_added", lbl); got != float64(sum.ItemsAdded) || got == 0 {
		t.Errorf("items added = %v, want %d (and not 0)", got, sum.ItemsAdded)
	}
	if got := gaugeValue(t, mfs, "ssmirror_last_run_fetched_bytes", lbl); got != float64(sum.FetchedBytes) {
		t.Errorf("bytes fetched = %v, want %d", got, sum.FetchedBytes)
	}
	if got := gaugeValue(t, mfs, "ssmirror_last_run_error", lbl); got != 0 {
		t.Errorf("error = %v", got)
	}
	success := gaugeValue(t, mfs, "ssmirror_last_success_timestamp_seconds", lbl)
	gaugeValue(t, mfs, "ssmirror_last_run_stage_duration_seconds", map[string]string{"job": "ssmirror", "target": target, "stage": "transfer"})

	// A failed run updates the group without losing the last success.
	bad := append([]string(nil), args...)
	bad[1] = filepath.Join(fx, "keys", "other-keyring.gpg")
	if _, stderr, code := runMain(t, bad...); code != 1 {
		t.Fatalf("sync with a wrong keyring: exit %d: %s", code, stderr)
	}
	mfs = scrape(t, base)
	if got := gaugeValue(t, mfs, "ssmirror_last_run_error", lbl); got != 1 {
		t.Errorf("after a failure, error = %v", got)
	}
	if got := gaugeValue(t, mfs, "ssmirror_last_success_timestamp_seconds", lbl); got != success {
		t.Errorf("after a failure, last success = %v, want %v", got, success)
	}
	if got := gaugeValue(t, mfs, "ssmirror_last_run_items_added", lbl); got != 0 {
		t.Errorf("after a failure, items added = %v, want 0", got)
	}

	// Another target is another group.
	other := filepath.Join(t.TempDir(), "other")
	if _, stderr, code := runMain(t, "--no-verify", "--metrics-push", base, filepath.Join(fx, "stream"), other, "os=pxelinux"); code != 0 {
		t.Fatalf("sync: exit %d: %s", code, stderr)
	}
	mfs = scrape(t, base)
	gaugeValue(t, mfs, "ssmirror_last_run_error", lbl)
	if got := gaugeValue(t, mfs, "ssmirror_last_run_error", map[string]string{"job": "ssmirror", "target": other}); got != 0 {
		t.Errorf("other target: error = %v", got)
	}
}

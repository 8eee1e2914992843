package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// needTool finds an external program; absent, the test skips, unless CI=true.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed (CI=true)", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// TestSystemdUnits runs systemd-analyze verify on the service and timer, with ExecStart pointed
// at an executable that exists here (verify checks it). Any diagnostic fails the test: unknown
// keys are only warnings to systemd.
func TestSystemdUnits(t *testing.T) {
	analyze := needTool(t, "systemd-analyze")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	svc, err := os.ReadFile(filepath.Join("systemd", "ssmirror.service"))
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(svc, []byte("ExecStart=/usr/local/bin/ssmirror sync --config /etc/ssmirror/maas.conf\n")); n != 1 {
		t.Fatalf("ssmirror.service: %d ExecStart lines running the whole selection (maas.conf), want 1", n)
	}
	// The only writable place is the StateDirectory, so no other path may be promised as
	// writable. It must be readable by the web server serving a directory target and by
	// node_exporter reading the metrics: not DynamicUser=, whose state directory is under
	// /var/lib/private (mode 0700), but a static user and a 0755 StateDirectoryMode.
	if bytes.Contains(svc, []byte("\nReadWritePaths=")) {
		t.Error("ssmirror.service promises a ReadWritePaths= directory")
	}
	if bytes.Contains(svc, []byte("\nDynamicUser=yes")) {
		t.Error("ssmirror.service has DynamicUser=yes: its state directory (the mirror, the metrics) would be under /var/lib/private, which no other user can reach")
	}
	for _, want := range []string{"Type=oneshot", "EnvironmentFile=", "User=ssmirror", "StateDirectory=ssmirror", "StateDirectoryMode=0755", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		if !bytes.Contains(svc, []byte("\n"+want)) {
			t.Errorf("ssmirror.service lacks %s", want)
		}
	}
	svc = bytes.ReplaceAll(svc, []byte("/usr/local/bin/ssmirror"), []byte(exe))
	timer, err := os.ReadFile(filepath.Join("systemd", "ssmirror.timer"))
	if err != nil {
		t.Fatal(err)
	}
	sysusers, err := os.ReadFile(filepath.Join("systemd", "ssmirror.sysusers"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(sysusers, []byte("\nu ssmirror ")) {
		t.Error("ssmirror.sysusers does not create the user ssmirror")
	}
	if tool, err := exec.LookPath("systemd-sysusers"); err == nil {
		// Create the user in an empty root, as systemd-sysusers does at boot.
		root := t.TempDir()
		os.Mkdir(filepath.Join(root, "etc"), 0o755)
		abs, _ := filepath.Abs(filepath.Join("systemd", "ssmirror.sysusers"))
		if out, err := exec.Command(tool, "--root="+root, abs).CombinedOutput(); err != nil {
			t.Errorf("systemd-sysusers: %v\n%s", err, out)
		}
		passwd, _ := os.ReadFile(filepath.Join(root, "etc", "passwd"))
		if !bytes.Contains(passwd, []byte("\nssmirror:")) && !bytes.HasPrefix(passwd, []byte("ssmirror:")) {
			t.Errorf("systemd-sysusers made no user ssmirror:\n%s", passwd)
		}
	}
	for name, data := range map[string][]byte{"ssmirror.service": svc, "ssmirror.timer": timer} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "./ssmirror.service", "./ssmirror.timer")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestKubernetesCronJob parses the manifest and checks what the guide promises of it.
func TestKubernetesCronJob(t *testing.T) {
	docs := kubernetesDocs(t)
	var cm, cj map[string]any
	for _, d := range docs {
		switch d["kind"] {
		case "ConfigMap":
			cm = d
		case "CronJob":
			cj = d
		}
	}
	if cm == nil || cj == nil {
		t.Fatalf("want a ConfigMap and a CronJob, got %d documents", len(docs))
	}
	if got := dig(t, cj, "apiVersion"); got != "batch/v1" {
		t.Errorf("CronJob apiVersion %v", got)
	}
	if got := dig(t, cj, "spec", "concurrencyPolicy"); got != "Forbid" {
		t.Errorf("concurrencyPolicy %v, want Forbid", got)
	}
	pod := dig(t, cj, "spec", "jobTemplate", "spec", "template", "spec").(map[string]any)
	if dig(t, pod, "restartPolicy") != "Never" || dig(t, pod, "securityContext", "runAsNonRoot") != true {
		t.Errorf("pod spec: restartPolicy Never and runAsNonRoot expected")
	}
	raw, err := os.ReadFile(filepath.Join("kubernetes", "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(raw), "\napiVersion:")
	configs := dig(t, cm, "data").(map[string]any)
	var containers []any
	if pod["initContainers"] != nil {
		t.Error("init containers: one run holds the whole selection")
	}
	containers = append(containers, dig(t, pod, "containers").([]any)...)
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1 (the whole selection, maas.conf)", len(containers))
	}
	for _, c := range containers {
		c := c.(map[string]any)
		args := c["args"].([]any)
		if len(args) != 3 || args[0] != "sync" || args[1] != "--config" {
			t.Errorf("container %v: args %v, want sync --config FILE", c["name"], args)
			continue
		}
		file := args[2].(string)
		if dir, key := filepath.Split(file); dir != "/etc/ssmirror/config/" || configs[key] == nil {
			t.Errorf("container %v: %s is not a key of the ConfigMap mounted at /etc/ssmirror/config", c["name"], file)
		}
		// Credentials come from the Secret, never inline.
		if c["env"] != nil {
			t.Errorf("container %v: inline env; credentials belong in the Secret", c["name"])
		}
		if dig(t, c, "envFrom").([]any)[0].(map[string]any)["secretRef"].(map[string]any)["name"] != "ssmirror-credentials" {
			t.Errorf("container %v: no envFrom secretRef ssmirror-credentials", c["name"])
		}
		// The image is the one the header's commands build and push.
		if img, _ := c["image"].(string); img == "" || !strings.Contains(header, "-t "+img+" .") || !strings.Contains(header, "push "+img) {
			t.Errorf("container %v: image %q is not the one the file's header says to build and push", c["name"], c["image"])
		}
		if dig(t, c, "securityContext", "readOnlyRootFilesystem") != true {
			t.Errorf("container %v: root filesystem not read-only", c["name"])
		}
	}
	for key, text := range configs {
		if strings.Contains(strings.ToLower(text.(string)), "secret") {
			t.Errorf("ConfigMap %s mentions a secret", key)
		}
	}
}

// kubernetesDocs parses kubernetes/cronjob.yaml into its documents.
func kubernetesDocs(t *testing.T) []map[string]any {
	t.Helper()
	f, err := os.Open(filepath.Join("kubernetes", "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	var docs []map[string]any
	for {
		var d map[string]any
		if err := dec.Decode(&d); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("cronjob.yaml: %v", err)
		}
		docs = append(docs, d)
	}
	return docs
}

// dig follows keys through nested maps.
func dig(t *testing.T, m map[string]any, keys ...string) any {
	t.Helper()
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: not a mapping at %q", keys, k)
		}
		v = mm[k]
	}
	return v
}

// TestDockerfile checks the promises the guide makes of the image (TestImageBuiltAndRun builds
// and runs it).
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0 go build", "FROM scratch", "ca-certificates.crt", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/ssmirror"]`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The last stage is the runtime image; its binary comes from a stage chosen by BINARY:
	// compiled (build) or taken from the context (prebuilt, buildable without a registry).
	for _, want := range []string{"ARG BINARY=build", "AS build\n", "FROM scratch AS prebuilt\n", "FROM ${BINARY} AS binary\n", "COPY --from=binary "} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if i := bytes.LastIndex(data, []byte("\nFROM ")); i < 0 || !bytes.HasPrefix(data[i:], []byte("\nFROM scratch AS runtime\n")) {
		t.Errorf("the last stage is not FROM scratch AS runtime")
	}
}

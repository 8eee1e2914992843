package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/spf13/pflag"

	"github.com/ssmirror/ssmirror/internal/publiccheck"
	"github.com/ssmirror/ssmirror/sync"
)

// Prometheus metrics of one sync run, for batch-job monitoring: written as a node_exporter
// textfile (--metrics-textfile) or pushed to a Pushgateway (--metrics-push). All are gauges
// describing the last run; alert on time() - ssmirror_last_success_timestamp_seconds.

// pushJob is the Pushgateway job name; the grouping key adds the target.
const pushJob = "ssmirror"

const lastSuccessMetric = "ssmirror_last_success_timestamp_seconds"

// metricsFlags are the flags that export a run's metrics.
type metricsFlags struct {
	textfile string
	pushURL  string
}

func (m *metricsFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&m.textfile, "metrics-textfile", "", "write the run's Prometheus metrics to this file (atomically; for node_exporter's textfile collector, name it *.prom)")
	fs.StringVar(&m.pushURL, "metrics-push", "", "push the run's Prometheus metrics to this Pushgateway URL (job ssmirror, grouped by target, and by mirror for a [mirror NAME] section)")
}

// check refuses, before any work, settings that could only fail after the run.
func (m *metricsFlags) check() error {
	if m.pushURL != "" {
		if _, err := pushTarget(m.pushURL); err != nil {
			return err
		}
	}
	if m.textfile != "" {
		dir := filepath.Dir(m.textfile)
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return usagef("--metrics-textfile %s: its directory does not exist", m.textfile)
		}
		if st, err := os.Stat(m.textfile); err == nil && !st.Mode().IsRegular() {
			return usagef("--metrics-textfile %s: not a regular file", m.textfile)
		}
		// The file is replaced by a rename from a temporary file beside it: try making one.
		tmp, err := os.CreateTemp(dir, "."+filepath.Base(m.textfile)+".check*")
		if err != nil {
			return usagef("--metrics-textfile %s: its directory is not writable: %w", m.textfile, err)
		}
		tmp.Close()
		os.Remove(tmp.Name())
	}
	return nil
}

// pushTarget parses a Pushgateway URL.
func pushTarget(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--metrics-push wants the http(s) URL of a Pushgateway")
	}
	return u, nil
}

func (m *metricsFlags) enabled() bool { return m.textfile != "" || m.pushURL != "" }

// runResult is what the metrics describe.
type runResult struct {
	target string
	// mirror is the [mirror] section the run is, "" when none: a label and a grouping key
	// besides the target (two sections may share a target).
	mirror   string
	report   *sync.Report // nil when the run failed before planning
	duration time.Duration
	err      error
	end      time.Time
	// cdnErr is a CloudFront invalidation that failed after the publish (a warning).
	cdnErr error
	// pushErr is a failed Pushgateway push, recorded in the textfile written after it.
	pushErr error
	// public is the read-back through the target's public URL (nil: none).
	public *publiccheck.ReadBackResult
}

// registry builds the run's metrics. With targetLabel, every series carries target="…" (for a
// textfile); without it the label comes from the Pushgateway's grouping key. lastSuccess, when
// not zero, is reported as the last success time (a failed run passes the previous one, if known).
func (r runResult) registry(targetLabel bool, lastSuccess float64) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	var labels prometheus.Labels
	if targetLabel {
		labels = prometheus.Labels{"target": r.target}
		if r.mirror != "" {
			labels["mirror"] = r.mirror
		}
	}
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
		g.Set(v)
		reg.MustRegister(g)
	}
	failed := 0.0
	if r.err != nil {
		failed = 1
	}
	gauge("ssmirror_last_run_timestamp_seconds", "When the last run ended (Unix time).", unixSeconds(r.end))
	gauge("ssmirror_last_run_error", "1 if the last run failed (nothing published), else 0.", failed)
	gauge("ssmirror_last_run_duration_seconds", "How long the last run took.", r.duration.Seconds())
	cdnFailed, pushFailed := 0.0, 0.0
	if r.cdnErr != nil {
		cdnFailed = 1
	}
	if r.pushErr != nil {
		pushFailed = 1
	}
	gauge("ssmirror_last_run_warnings", "Problems after the publish that did not fail the last run (a failed CDN invalidation or metrics push).", cdnFailed+pushFailed)
	gauge("ssmirror_last_run_cdn_invalidation_error", "1 if the last run's CDN invalidation failed after the publish, else 0.", cdnFailed)
	gauge("ssmirror_last_run_metrics_push_error", "1 if the last run's push to the Pushgateway failed (seen in the textfile, written after the push), else 0.", pushFailed)
	if lastSuccess != 0 {
		gauge(lastSuccessMetric, "When the last successful run ended (Unix time).", lastSuccess)
	}
	rep := r.report
	if rep == nil {
		rep = &sync.Report{}
	}
	var added, removed, kept int
	if rep.Plan != nil {
		added, removed, kept = len(rep.Plan.Added), len(rep.Plan.Removed), rep.Plan.Kept
	}
	gauge("ssmirror_last_run_items_added", "Items the last run added to the mirror.", float64(added))
	gauge("ssmirror_last_run_items_removed", "Items the last run released from the mirror.", float64(removed))
	gauge("ssmirror_last_run_items_kept", "Items the last run kept as they were.", float64(kept))
	gauge("ssmirror_last_run_files_fetched", "Files the last run downloaded from the source.", float64(rep.Fetched))
	gauge("ssmirror_last_run_fetched_bytes", "Bytes the last run downloaded from the source.", float64(rep.FetchedBytes))
	gauge("ssmirror_last_run_files_copied", "Files the last run copied inside the target.", float64(rep.Copied))
	gauge("ssmirror_last_run_copied_bytes", "Bytes the last run copied inside the target.", float64(rep.CopiedBytes))
	gauge("ssmirror_last_run_files_adopted", "Files the last run found already present and verified.", float64(rep.Adopted))
	gauge("ssmirror_last_run_metadata_written", "Metadata files the last run published.", float64(len(rep.MetadataWritten)))
	gauge("ssmirror_last_run_deleted_objects", "Objects the last run garbage-collected.", float64(len(rep.Deleted)))
	gauge("ssmirror_last_run_pending_deletion_objects", "Unreferenced objects waiting for the grace period.", float64(rep.PendingDeletion))
	if r.err == nil && rep.Plan != nil {
		// What the mirror holds after a good run (a failed one leaves the previous values out).
		t := totalsOf(rep.Plan.Held)
		gauge("ssmirror_mirror_products", "Products the mirror holds.", float64(t.Products))
		gauge("ssmirror_mirror_versions", "Versions the mirror holds.", float64(t.Versions))
		gauge("ssmirror_mirror_items", "Items the mirror holds.", float64(t.Items))
		gauge("ssmirror_mirror_files", "Distinct content files the mirror holds.", float64(t.Files))
		gauge("ssmirror_mirror_bytes", "Bytes of content the mirror holds (each file once).", float64(t.Bytes))
	}
	if p := r.public; p != nil {
		// What the public URL served after the publish (--public-url).
		served := -1.0
		if p.IndexSeconds != nil {
			served = *p.IndexSeconds
		}
		gauge("ssmirror_public_index_seconds", "How long after the publish the public URL served the new index (-1: not within --public-wait).", served)
		gauge("ssmirror_public_stale", "Metadata files the public URL still served in an older version after --public-wait.", float64(len(p.Stale)))
		gauge("ssmirror_public_missing", "Files (metadata or content) the public URL did not serve as published.", float64(len(p.Missing)))
	}
	stages := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "ssmirror_last_run_stage_duration_seconds", Help: "Time the last run spent in each stage.", ConstLabels: labels,
	}, []string{"stage"})
	for _, s := range rep.Stages {
		stages.WithLabelValues(s.Name).Add(s.Duration.Seconds())
	}
	reg.MustRegister(stages)
	return reg
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// export writes and pushes the run's metrics as the flags ask: one result per target (a fan-out
// run has several, each with its own target label and Pushgateway group, so that each target's
// failure and last success are seen on their own).
func (m *metricsFlags) export(ctx context.Context, rs ...runResult) error {
	// Push first, so that the textfile can record a failed push.
	var errs []error
	if m.pushURL != "" {
		for i := range rs {
			if err := pushMetrics(ctx, m.pushURL, rs[i]); err != nil {
				rs[i].pushErr = err
				errs = append(errs, err)
			}
		}
	}
	if m.textfile != "" {
		if err := writeTextfile(m.textfile, rs...); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeTextfile replaces path with the runs' metrics: a temporary file in the same directory,
// renamed over it, so the collector never reads half a file. A target whose run failed carries
// over the last success time recorded for it in the previous file.
func writeTextfile(path string, rs ...runResult) error {
	var mfs []*dto.MetricFamily
	byName := map[string]*dto.MetricFamily{}
	for _, r := range rs {
		last := 0.0
		if r.err == nil {
			last = unixSeconds(r.end)
		} else {
			last = previousSuccess(path, r.target)
		}
		got, err := r.registry(true, last).Gather()
		if err != nil {
			return fmt.Errorf("metrics textfile %s: %w", path, err)
		}
		for _, mf := range got {
			if have := byName[mf.GetName()]; have != nil {
				have.Metric = append(have.Metric, mf.Metric...)
				continue
			}
			byName[mf.GetName()] = mf
			mfs = append(mfs, mf)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("metrics textfile: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	for _, mf := range mfs {
		if _, err = expfmt.MetricFamilyToText(tmp, mf); err != nil {
			break
		}
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("metrics textfile %s: %w", path, err)
	}
	return nil
}

// previousSuccess reads target's last success time from an earlier textfile (0 when unknown).
func previousSuccess(path, target string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		return 0
	}
	if mf := mfs[lastSuccessMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" && l.GetValue() == target {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// pushMetrics sends the run's metrics to a Pushgateway, grouped by job and target. A success
// replaces the group (PUT); a failure updates only the metrics it has (POST), so the group keeps
// the last success time. Credentials in the URL are sent as basic auth and never printed.
func pushMetrics(ctx context.Context, rawURL string, r runResult) error {
	u, err := pushTarget(rawURL)
	if err != nil {
		return err
	}
	user := u.User
	u.User = nil
	p := push.New(u.String(), pushJob).Grouping("target", r.target)
	if r.mirror != "" {
		p = p.Grouping("mirror", r.mirror)
	}
	if user != nil {
		pass, _ := user.Password()
		p = p.BasicAuth(user.Username(), pass)
	}
	if r.err == nil {
		err = p.Gatherer(r.registry(false, unixSeconds(r.end))).PushContext(ctx)
	} else {
		err = p.Gatherer(r.registry(false, 0)).AddContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("metrics push to %s: %w", u.Redacted(), err)
	}
	return nil
}

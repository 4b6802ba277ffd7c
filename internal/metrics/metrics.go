package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigil-tsem/vigil/internal/httplimit"
)

// DefaultAddr is where the agent serves /metrics unless told otherwise:
// loopback only, so exposing metrics beyond the node is a deliberate choice.
const DefaultAddr = "127.0.0.1:9476"

// Options tune New.
type Options struct {
	// Runtime adds the Go runtime and process collectors (CPU, RSS, open
	// files), which the agent wants and golden-file tests do not.
	Runtime bool
	// HTTP bounds the clients of Serve (httplimit defaults when zero:
	// 5 s for a request header, 30 s for a request, 16 KiB of header, 64
	// connections at once).
	HTTP httplimit.Limits
}

// Metrics is the agent's set of metrics on its own registry.
type Metrics struct {
	reg  *prometheus.Registry
	http httplimit.Limits

	events          *prometheus.CounterVec
	lost            *prometheus.CounterVec
	forensics       *prometheus.CounterVec
	denials         *prometheus.CounterVec
	points          *prometheus.GaugeVec
	namespaces      prometheus.Gauge
	extends         *prometheus.CounterVec
	extendLatency   *prometheus.HistogramVec
	unrecorded      *prometheus.CounterVec
	logWaiting      prometheus.Gauge
	pipelineLatency prometheus.Histogram
	digestCache     *prometheus.CounterVec
	unhashable      *prometheus.CounterVec
	ringFill        prometheus.Gauge
	backend         *prometheus.GaugeVec
}

// New creates the metrics and registers them on a fresh registry.
func New(opts Options) *Metrics {
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		http: opts.HTTP,
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_events_total",
			Help: "Security events modeled, by namespace and TSEM event type.",
		}, []string{"namespace", "type"}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_records_lost_total",
			Help: "Event records the kernel could not deliver, by namespace and reason; any loss breaks the namespace's model.",
		}, []string{"namespace", "reason"}),
		forensics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_forensics_events_total",
			Help: "Security events outside a sealed model, by namespace.",
		}, []string{"namespace"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_denials_total",
			Help: "Security events denied by an enforcing model, by namespace.",
		}, []string{"namespace"}),
		points: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_model_points",
			Help: "Unique security state coefficients (trajectory size) in each namespace's model.",
		}, []string{"namespace"}),
		namespaces: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_namespaces",
			Help: "Security modeling namespaces the agent holds.",
		}),
		extends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_register_extends_total",
			Help: "Measurement register extends done (one per record of the measured log: new model points and namespace and run records), by register.",
		}, []string{"register"}),
		extendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_register_extend_duration_seconds",
			Help: "Time to write, sync and extend the group commit that measured each log record, by register.",
			// 10µs (software) to ~2.6s (a busy TPM).
			Buckets: prometheus.ExponentialBuckets(1e-5, 4, 10),
		}, []string{"register"}),
		unrecorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_log_points_unrecorded_total",
			Help: "Model points the measured log could not record (it could not be written, and they did not fit in memory), by namespace; a gap record of the namespace counts them.",
		}, []string{"namespace"}),
		logWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_log_waiting_records",
			Help: "Records waiting in memory to be written to the measured log.",
		}),
		pipelineLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_pipeline_latency_seconds",
			Help: "Time from the kernel recording a security event to the event being modeled.",
			// 1µs to ~4s.
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		unhashable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_unhashable_files_total",
			Help: "File cells whose content could not be hashed as the event saw it (changed, deleted or unreachable before Vigil read it), by namespace; they carry the unhashable digest, are never learned and are forensics in a sealed namespace.",
		}, []string{"namespace"}),
		digestCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_digest_cache_lookups_total",
			Help: "File digest cache lookups, by result (hit or miss).",
		}, []string{"result"}),
		ringFill: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ringbuf_fill_ratio",
			Help: "Fraction of the event ring buffer in use when last read (0 to 1).",
		}),
		backend: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_capture_backend_info",
			Help: "The capture backend in use (lsm or tracepoint) has value 1.",
		}, []string{"backend"}),
	}
	m.reg.MustRegister(m.events, m.lost, m.forensics, m.denials, m.points, m.namespaces,
		m.extends, m.extendLatency, m.unrecorded, m.logWaiting, m.pipelineLatency, m.digestCache, m.unhashable, m.ringFill, m.backend)
	// Both results exist from the start so rate() works before the first miss.
	m.digestCache.WithLabelValues("hit")
	m.digestCache.WithLabelValues("miss")
	if opts.Runtime {
		m.reg.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// CountRepeatErrors exposes f as vigil_repeat_count_errors_total: repeat
// counts of the kernel's repeat cache that could not be added to a model
// point (a count without its record, or after its namespace's finish
// marker). Call it once.
func (m *Metrics) CountRepeatErrors(f func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_repeat_count_errors_total",
		Help: "Repeat counts from the kernel's repeat cache that could not be added to a model point (a count without its record, or after its finish marker).",
	}, func() float64 { return float64(f()) }))
}

// ExportCounts are the event export's line counts (export.Stats).
type ExportCounts struct {
	Written, Dropped, Failed, WriteErrors uint64
}

// CountExport exposes f as vigil_export_lines_total{result} (written,
// dropped: the destination was behind, failed: in a failed write) and
// vigil_export_write_errors_total. Call it once.
func (m *Metrics) CountExport(f func() ExportCounts) {
	m.reg.MustRegister(exportCollector{
		f:      f,
		lines:  prometheus.NewDesc("vigil_export_lines_total", "Exported event lines, by result: written, dropped (the destination was behind) or failed (in a write that failed).", []string{"result"}, nil),
		errors: prometheus.NewDesc("vigil_export_write_errors_total", "Writes of the event export that failed (a full disk, a closed pipe).", nil, nil),
	})
}

// exportCollector reads the export's counts once per scrape.
type exportCollector struct {
	f             func() ExportCounts
	lines, errors *prometheus.Desc
}

func (c exportCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lines
	ch <- c.errors
}

func (c exportCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.f()
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(n.Written), "written")
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(n.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(n.Failed), "failed")
	ch <- prometheus.MustNewConstMetric(c.errors, prometheus.CounterValue, float64(n.WriteErrors))
}

// CountLogAppendErrors exposes f as vigil_log_append_errors_total: writes
// and fdatasyncs of the measured log that failed (each retry counts). Call
// it once.
func (m *Metrics) CountLogAppendErrors(f func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "vigil_log_append_errors_total",
		Help: "Writes and fdatasyncs of the measured log that failed (a full disk, an I/O error); the records wait in memory and are retried.",
	}, func() float64 { return float64(f()) }))
}

// Registry returns the registry the metrics live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// EventCounter returns the counter of one namespace's events of one type,
// for a hot path to keep and Inc. It is removed by RemoveNamespace; a
// counter kept after that still counts but is no longer exported.
func (m *Metrics) EventCounter(namespace, eventType string) prometheus.Counter {
	return m.events.WithLabelValues(namespace, eventType)
}

// Event counts one security event.
func (m *Metrics) Event(namespace, eventType string) {
	m.events.WithLabelValues(namespace, eventType).Inc()
}

// RecordsLost adds n lost records.
func (m *Metrics) RecordsLost(namespace, reason string, n uint64) {
	m.lost.WithLabelValues(namespace, reason).Add(float64(n))
}

// Forensics counts one event outside a sealed model.
func (m *Metrics) Forensics(namespace string) { m.forensics.WithLabelValues(namespace).Inc() }

// Repeats counts n more events of one type of a namespace, forensics
// when forensic: the repeats the kernel's repeat cache counted in place of
// reporting each one.
func (m *Metrics) Repeats(namespace, eventType string, n uint64, forensic bool) {
	m.events.WithLabelValues(namespace, eventType).Add(float64(n))
	if forensic {
		m.forensics.WithLabelValues(namespace).Add(float64(n))
	}
}

// Denial counts one event denied by an enforcing model.
func (m *Metrics) Denial(namespace string) { m.denials.WithLabelValues(namespace).Inc() }

// SetPoints sets the size of a namespace's model.
func (m *Metrics) SetPoints(namespace string, n int) {
	m.points.WithLabelValues(namespace).Set(float64(n))
}

// SetNamespaces sets how many namespaces the agent holds.
func (m *Metrics) SetNamespaces(n int) { m.namespaces.Set(float64(n)) }

// RegisterExtends records records extends of a measurement register
// ("tdx", "tpm" or "software") done by one commit of the log, and how long
// the commit took.
func (m *Metrics) RegisterExtends(register string, records int, took time.Duration) {
	m.extends.WithLabelValues(register).Add(float64(records))
	h := m.extendLatency.WithLabelValues(register)
	for range records {
		h.Observe(took.Seconds())
	}
}

// PointsUnrecorded adds n model points of a namespace the log could not
// record.
func (m *Metrics) PointsUnrecorded(namespace string, n uint64) {
	m.unrecorded.WithLabelValues(namespace).Add(float64(n))
}

// SetLogWaiting sets how many records wait to be written to the log.
func (m *Metrics) SetLogWaiting(n int) { m.logWaiting.Set(float64(n)) }

// PipelineLatency records the time from capture to model for one event.
func (m *Metrics) PipelineLatency(took time.Duration) { m.pipelineLatency.Observe(took.Seconds()) }

// Unhashable counts an event of namespace with a file whose content could
// not be hashed.
func (m *Metrics) Unhashable(namespace string) { m.unhashable.WithLabelValues(namespace).Inc() }

// DigestCache counts one file digest cache lookup.
func (m *Metrics) DigestCache(hit bool) {
	if hit {
		m.digestCache.WithLabelValues("hit").Inc()
	} else {
		m.digestCache.WithLabelValues("miss").Inc()
	}
}

// SetRingFill sets the ring buffer's fill ratio, 0 to 1.
func (m *Metrics) SetRingFill(ratio float64) { m.ringFill.Set(ratio) }

// SetBackend marks the capture backend in use, clearing any other.
func (m *Metrics) SetBackend(name string) {
	m.backend.Reset()
	m.backend.WithLabelValues(name).Set(1)
}

// RemoveNamespace deletes every series labelled with the namespace.
func (m *Metrics) RemoveNamespace(namespace string) {
	l := prometheus.Labels{"namespace": namespace}
	m.events.DeletePartialMatch(l)
	m.lost.DeletePartialMatch(l)
	m.forensics.DeletePartialMatch(l)
	m.denials.DeletePartialMatch(l)
	m.points.DeletePartialMatch(l)
	m.unrecorded.DeletePartialMatch(l)
	m.unhashable.DeletePartialMatch(l)
}

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		Registry:          m.reg, // counts its own scrape errors
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Listen opens the metrics listener on exactly addr (host:port); an empty
// host would mean every interface, so it is refused: say 0.0.0.0 to mean it.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if host == "" {
		return nil, fmt.Errorf("metrics address %q: give a host (127.0.0.1 for this node only, 0.0.0.0 for every interface)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	return l, nil
}

// Serve serves /metrics (and a plain /healthz) on l until ctx is done, then
// shuts down and returns nil.
func (m *Metrics) Serve(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	hs := m.http.Server(mux)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(m.http.Listener(l)) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serve metrics: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down metrics server: %w", err)
	}
	return nil
}

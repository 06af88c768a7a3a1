package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/deploybot/deploybot/releases"
)

// Metrics are the Prometheus series serve exports on /metrics. They live
// in their own registry, so tests can start several servers.
type Metrics struct {
	Registry     *prometheus.Registry
	Deploys      *prometheus.CounterVec   // site, kind, result
	PhaseSeconds *prometheus.HistogramVec // site, phase, result
	InProgress   *prometheus.GaugeVec     // site
	Releases     *prometheus.CounterVec   // site, source
	HookRequests *prometheus.CounterVec   // status
	// HookReplayEntries is the size of the hook's replay cache;
	// HookReplayFull counts notices refused because it was full.
	HookReplayEntries prometheus.Gauge
	HookReplayFull    prometheus.Counter
	APIRequests       *prometheus.CounterVec   // route, status
	ReconcileRuns     *prometheus.CounterVec   // site, result
	Drift             *prometheus.CounterVec   // site
	Recovered         *prometheus.CounterVec   // site, result
	LastReconcileOK   *prometheus.GaugeVec     // site: unix time of the last good reconcile
	PruneRuns         *prometheus.CounterVec   // site, result (ok, failed, skipped, dry_run)
	PruneSeconds      *prometheus.HistogramVec // site
	ReleasesPruned    *prometheus.CounterVec   // site
	ObjectsPruned     *prometheus.CounterVec   // site
	BytesFreed        *prometheus.CounterVec   // site
	SlackLost         *prometheus.CounterVec   // what
	SlackConnections  prometheus.Gauge         // the app's socket-mode connections, as Slack's last hello said
	// HistoryPending is how many records wait to be mirrored to the
	// bucket; HistoryPushes counts push rounds by result (ok, failed).
	HistoryPending prometheus.Gauge
	HistoryPushes  *prometheus.CounterVec
	// SiteLease is 1 for the sites whose lease this replica holds (it runs
	// their once-per-site jobs), else 0.
	SiteLease *prometheus.GaugeVec
	// Restarts counts background workers started again after they
	// stopped (the Slack socket), by worker.
	Restarts *prometheus.CounterVec
}

// NewMetrics registers every series.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Deploys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_deploys_total",
			Help: "Deploys that reached a final state, by site, kind (promote, rollback) and result (done, failed)."}, []string{"site", "kind", "result"}),
		PhaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "deploybot_deploy_phase_seconds",
			Help:    "Duration of deploy phases (update, propagate, invalidate, invalidate-wait).",
			Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200}}, []string{"site", "phase", "result"}),
		InProgress: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "deploybot_deploys_in_progress",
			Help: "Deploys running now."}, []string{"site"}),
		Releases: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_releases_recorded_total",
			Help: "Releases recorded, by how they were found (hook, reconcile, api)."}, []string{"site", "source"}),
		HookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_hook_requests_total",
			Help: "CI hook requests by HTTP status."}, []string{"status"}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_api_requests_total",
			Help: "API requests by route and HTTP status."}, []string{"route", "status"}),
		ReconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_reconcile_runs_total",
			Help: "Reconcile runs by site and result (ok, error)."}, []string{"site", "result"}),
		Drift: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_drift_total",
			Help: "Times reconcile found the distribution serving something other than the recorded live release."}, []string{"site"}),
		Recovered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_recovered_deploys_total",
			Help: "Interrupted deploys driven to a final state at start, by result."}, []string{"site", "result"}),
		LastReconcileOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "deploybot_last_reconcile_success_timestamp_seconds",
			Help: "Unix time of the last reconcile that reached S3 and CloudFront."}, []string{"site"}),
	}
	m.PruneRuns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_prune_runs_total",
		Help: "Retention runs by site and result (ok, failed, skipped, dry_run)."}, []string{"site", "result"})
	m.PruneSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "deploybot_prune_seconds",
		Help: "Duration of retention runs.", Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 300, 900}}, []string{"site"})
	m.ReleasesPruned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_pruned_releases_total",
		Help: "Releases (and abandoned uploads) deleted by retention."}, []string{"site"})
	m.ObjectsPruned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_pruned_objects_total",
		Help: "Objects deleted by retention."}, []string{"site"})
	m.BytesFreed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_pruned_bytes_total",
		Help: "Bytes freed by retention."}, []string{"site"})
	m.HookReplayEntries = prometheus.NewGauge(prometheus.GaugeOpts{Name: "deploybot_hook_replay_cache_entries",
		Help: "Accepted CI notices remembered (while their timestamp is in the window) to refuse replays."})
	m.HookReplayFull = prometheus.NewCounter(prometheus.CounterOpts{Name: "deploybot_hook_replay_cache_full_total",
		Help: "CI notices refused because the replay cache was full."})
	m.SlackLost = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_slack_posts_lost_total",
		Help: "Slack posts given up on after the retries, by what they were (reply, ephemeral, card, card_update, thread, notice, prune_summary, approval, approval_update, approval_decided)."}, []string{"what"})
	m.HistoryPending = prometheus.NewGauge(prometheus.GaugeOpts{Name: "deploybot_history_mirror_pending",
		Help: "History records (deploys, audit entries, release records, pins, locks, freezes) recorded in the store and not yet written to the bucket."})
	m.HistoryPushes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_history_mirror_pushes_total",
		Help: "Rounds of writing pending history to the bucket, by result (ok, failed)."}, []string{"result"})
	m.SlackConnections = prometheus.NewGauge(prometheus.GaugeOpts{Name: "deploybot_slack_connections",
		Help: "Socket-mode connections the Slack app has open (all replicas), from the num_connections of Slack's last hello."})
	m.SiteLease = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "deploybot_site_lease_held",
		Help: "1 for each site whose lease this replica holds: it posts the notices reconcile finds, reports drift and expires approvals there."}, []string{"site"})
	m.Restarts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deploybot_restarts_total",
		Help: "Background workers started again after they stopped with an error, by worker (slack)."}, []string{"worker"})
	r.MustRegister(m.HookReplayEntries, m.HookReplayFull, m.SlackLost, m.HistoryPending, m.HistoryPushes, m.SlackConnections, m.SiteLease, m.Restarts)
	r.MustRegister(m.PruneRuns, m.PruneSeconds, m.ReleasesPruned, m.ObjectsPruned, m.BytesFreed)
	r.MustRegister(m.Deploys, m.PhaseSeconds, m.InProgress, m.Releases, m.HookRequests, m.APIRequests,
		m.ReconcileRuns, m.Drift, m.Recovered, m.LastReconcileOK)
	return m
}

// observe turns deploy events into series.
func (m *Metrics) observe(e releases.Event) {
	d := e.Deploy
	switch e.Type {
	case releases.EventDeployStarted, releases.EventDeployResumed:
		m.InProgress.WithLabelValues(d.Site).Inc()
	case releases.EventPhaseFinished:
		m.PhaseSeconds.WithLabelValues(d.Site, string(e.Phase), "ok").Observe(e.Elapsed.Seconds())
	case releases.EventPhaseFailed:
		m.PhaseSeconds.WithLabelValues(d.Site, string(e.Phase), "failed").Observe(e.Elapsed.Seconds())
	case releases.EventDeployFinished:
		m.InProgress.WithLabelValues(d.Site).Dec()
		m.Deploys.WithLabelValues(d.Site, string(d.Kind), "done").Inc()
	case releases.EventDeployFailed:
		m.InProgress.WithLabelValues(d.Site).Dec()
		m.Deploys.WithLabelValues(d.Site, string(d.Kind), "failed").Inc()
	case releases.EventDeployInterrupted:
		m.InProgress.WithLabelValues(d.Site).Dec()
	}
}

// Package dashboards serves the marketers' web dashboard (embedded assets,
// handlers, sign-in) and holds the Grafana dashboard JSON. Its capabilities
// arrive with the dashboards issue; nothing here is wired yet.
package dashboards

package browser_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/glimpse-analytics/glimpse/internal/apptest"
	"github.com/glimpse-analytics/glimpse/internal/apptest/browser"
)

func TestMain(m *testing.M) { apptest.Main(m) }

// TestTabs: a tab logs its requests with their answers and counts its
// beacons, and two tabs share no storage.
func TestTabs(t *testing.T) {
	b := browser.Shared(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case browser.BeaconPath:
			w.Header().Set("X-Glimpse-Dropped", "test")
			w.WriteHeader(http.StatusAccepted)
		case "/":
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `<!doctype html><title>t</title><script>fetch('/api/event', {method: 'POST', body: 'hi'})</script>`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	a := b.Tab(t, "a")
	browser.Navigate(t, a.Ctx, srv.URL+"/", "")
	a.WaitBeacons(t, 1)
	var beacon browser.Request
	deadline := time.Now().Add(10 * time.Second)
	for !beacon.Done() && time.Now().Before(deadline) {
		for _, r := range a.Requests() {
			if r.URL == srv.URL+browser.BeaconPath {
				beacon = r
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if beacon.Method != "POST" || beacon.Body != "hi" || beacon.Tab != "a" || beacon.Status != 202 || beacon.Dropped != "test" || beacon.Aborted() {
		t.Errorf("beacon %+v", beacon)
	}
	browser.Eval(t, a.Ctx, `localStorage.x = '1'`)

	c := b.Tab(t, "c")
	browser.Navigate(t, c.Ctx, srv.URL+"/", "")
	if v := browser.Value[bool](t, c.Ctx, `localStorage.x === undefined`); !v {
		t.Error("a new tab sees another tab's localStorage")
	}
	c.WaitBeacons(t, 1)
	if n := a.Beacons(); n != 1 {
		t.Errorf("tab a counts %d beacons, want its own 1", n)
	}
}

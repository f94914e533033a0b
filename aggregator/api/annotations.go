package api

import (
	"context"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/aggregator/period"
	"github.com/glimpse-analytics/glimpse/internal/storage/notes"
)

// AnnotationsResponse is the annotations endpoint's answer.
type AnnotationsResponse struct {
	Results []notes.Annotation `json:"results"`
}

// annotations lists the site's annotations whose day lies in the period
// (period and date as the other endpoints take them), oldest first.
// Annotations are what the site's users wrote, not visitor data: no k
// threshold or noise applies. A shared link's reader does not learn who
// wrote them.
func (a *API) annotations(ctx context.Context, r *request) (any, error) {
	if a.opts.Notes == nil {
		return nil, &httpError{fasthttp.StatusServiceUnavailable, "annotations are not available: glimpse serve stores them in ClickHouse"}
	}
	loc := r.site.Location
	if loc == nil {
		loc = time.UTC
	}
	p, err := period.Parse(r.get("period"), r.get("date"), loc, r.now)
	if err != nil {
		return nil, &httpError{fasthttp.StatusBadRequest, err.Error()}
	}
	from := p.From.In(loc).Format(time.DateOnly)
	to := p.To.Add(-time.Nanosecond).In(loc).Format(time.DateOnly)
	as, err := a.opts.Notes.Annotations(ctx, r.site.Domain, from, to)
	if err != nil {
		a.opts.Log.Error("cannot read annotations", "site", r.site.Domain, "err", err)
		return nil, &httpError{fasthttp.StatusServiceUnavailable, "cannot read annotations now; try again"}
	}
	if strings.HasPrefix(r.reader, "link:") {
		for i := range as {
			as[i].CreatedBy = ""
		}
	}
	return &AnnotationsResponse{Results: as}, nil
}

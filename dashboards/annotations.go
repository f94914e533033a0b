package dashboards

import (
	"context"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/glimpse-analytics/glimpse/internal/config"
)

// Annotations: a short text on a day (or a minute of it) per site, drawn
// on the chart. The page reads them through the Stats API's annotations
// endpoint (HandlersWith); signed-in users add, edit and delete them here.
const (
	PathAnnotations      = PathAPI + "annotations"
	PathAnnotationSave   = PathAPI + "annotations/save"
	PathAnnotationDelete = PathAPI + "annotations/delete"
	maxAnnotationText    = 200
)

// annotationDays bound an annotation's day: what a ClickHouse Date holds,
// with a margin.
var annotationDays = [2]time.Time{time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 12, 31, 0, 0, 0, 0, time.UTC)}

// saveAnnotation creates an annotation (no id) or edits one: date
// (YYYY-MM-DD), time (HH:MM or empty for the whole day, in the site's
// time zone) and text (1 to 200 characters).
func (d *Dashboard) saveAnnotation(ctx context.Context, args *fasthttp.Args, site *config.Site, email string) (any, error) {
	id, err := checkID(args, false)
	if err != nil {
		return nil, err
	}
	date := string(args.Peek("date"))
	day, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return nil, badInput("invalid date " + strconv.Quote(date) + ": YYYY-MM-DD")
	}
	if day.Before(annotationDays[0]) || day.After(annotationDays[1]) {
		return nil, badInput("the date must lie between 1971 and 2100")
	}
	tm := string(args.Peek("time"))
	if tm != "" {
		if _, err := time.Parse("15:04", tm); err != nil || len(tm) != 5 {
			return nil, badInput("invalid time " + strconv.Quote(tm) + ": HH:MM, or empty for the whole day")
		}
	}
	text, err := checkText("the text", string(args.Peek("text")), maxAnnotationText)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return d.opts.Notes.CreateAnnotation(ctx, site.Domain, date, tm, text, email)
	}
	return d.opts.Notes.UpdateAnnotation(ctx, site.Domain, id, date, tm, text)
}

func (d *Dashboard) deleteAnnotation(ctx context.Context, args *fasthttp.Args, site *config.Site, _ string) (any, error) {
	id, err := checkID(args, true)
	if err != nil {
		return nil, err
	}
	if err := d.opts.Notes.DeleteAnnotation(ctx, site.Domain, id); err != nil {
		return nil, err
	}
	return map[string]string{"deleted": id}, nil
}

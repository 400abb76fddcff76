package platform

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardFile = root + "/config/grafana/ragops-dashboard.json"

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource map[string]any `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// query is one PromQL expression of the dashboard, with where it is.
type query struct{ where, expr string }

func readDashboard(t *testing.T) (dashboard, []query) {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var qs []query
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), tg.Expr})
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(map[string]any); ok && v.Type == "query" {
			qs = append(qs, query{"variable " + v.Name, q["query"].(string)})
		}
	}
	return d, qs
}

var labelValues = regexp.MustCompile(`^label_values\((.+), (\w+)\)$`)

// parse parses the query. A variable's label_values(selector, label) is
// Grafana's, not PromQL: it becomes its selector with label=~".+", so the
// label is checked as any matcher is.
func (q query) parse() (parser.Expr, error) {
	expr, label := q.expr, ""
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		expr, label = m[1], m[2]
	}
	e, err := parsePromQL(expr)
	if err != nil {
		return nil, fmt.Errorf("%q does not parse: %w", q.expr, err)
	}
	if label != "" {
		vs, ok := e.(*parser.VectorSelector)
		if !ok {
			return nil, fmt.Errorf("label_values of %s, not of a selector", expr)
		}
		vs.LabelMatchers = append(vs.LabelMatchers, labels.MustNewMatcher(labels.MatchRegexp, label, ".+"))
	}
	return e, nil
}

// Every query of the dashboard parses, and names only series and labels that
// the embedding server and the manager really expose.
func TestDashboardQueriesNameExposedMetrics(t *testing.T) {
	cats := exposedMetrics(t)
	_, qs := readDashboard(t)
	if len(qs) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	for _, q := range qs {
		e, err := q.parse()
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		for _, p := range checkNames(e, cats, nil) {
			t.Errorf("%s: %s", q.where, p)
		}
	}
}

// The dashboard shows what the issue asks for: every metric of the
// embedding server's contract and every ragops_* metric of the manager.
func TestDashboardCoversEveryMetric(t *testing.T) {
	cats := exposedMetrics(t)
	_, qs := readDashboard(t)
	used := map[string]bool{}
	for _, q := range qs {
		e, err := q.parse()
		if err != nil {
			continue // reported by the test above
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok {
				for _, c := range cats {
					if fam, ok := c.seriesFamily(vs.Name); ok {
						used[fam] = true
					}
				}
			}
			return nil
		})
	}
	for _, c := range cats {
		for name := range c.families {
			if (strings.HasPrefix(name, "embedserver_") || strings.HasPrefix(name, "ragops_")) && !used[name] {
				t.Errorf("no panel shows %s (%s)", name, c.binary)
			}
		}
	}
}

// The JSON is a dashboard Grafana loads: unique panel ids, a datasource on
// every query panel, a layout inside the 24 columns, and only variables that
// are defined.
func TestDashboardShape(t *testing.T) {
	d, qs := readDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q title %q schemaVersion %d", d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	for _, want := range []string{"datasource", "namespace", "service", "revision"} {
		if !vars[want] {
			t.Errorf("no variable %s", want)
		}
	}
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v outside the 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource["uid"] != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
		}
	}
	for _, q := range qs {
		for _, m := range grafanaVariable.FindAllString(q.expr, -1) {
			name := strings.Trim(strings.SplitN(strings.TrimPrefix(m, "$"), ":", 2)[0], "{}")
			if !strings.HasPrefix(name, "__") && !vars[name] {
				t.Errorf("%s uses undefined variable %s", q.where, m)
			}
		}
	}
	if !slices.ContainsFunc(d.Panels, func(p panel) bool { return p.Type == "row" }) {
		t.Error("no rows: the server and rollout panels are not grouped")
	}
}

package platform

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

const (
	argoDir    = root + "/config/argocd/rag.ragops.io/RAGService"
	argoScript = argoDir + "/health.lua"
	argoCMFile = root + "/config/argocd/argocd-cm.yaml"
	// The argocd-cm key of a health customization: group_Kind.
	argoCMKey = "resource.customizations.health.rag.ragops.io_RAGService"
)

// healthStatus is what an Argo CD health script returns.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// The health statuses Argo CD accepts from a script; anything else it shows
// as Unknown ("Lua returned an invalid health status").
var argoHealthCodes = []string{"Unknown", "Progressing", "Suspended", "Healthy", "Degraded", "Missing"}

// runHealthLua runs a health script the way Argo CD's controller does
// (util/lua in argo-cd): gopher-lua without the standard libraries except
// package, base and table, a one-second deadline, the object as the global
// `obj`, and the returned table read as {status, message}.
func runHealthLua(script string, obj map[string]any) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", luaValue(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, fmt.Errorf("running the health script: %w", err)
	}
	tbl, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("the health script returned %s, want a table", l.Get(-1).Type())
	}
	var hs healthStatus
	for field, into := range map[string]*string{"status": &hs.Status, "message": &hs.Message} {
		switch v := tbl.RawGetString(field).(type) {
		case lua.LString:
			*into = string(v)
		case *lua.LNilType:
		default:
			return healthStatus{}, fmt.Errorf("the health script returned %s = %s, want a string", field, v.Type())
		}
	}
	if !slices.Contains(argoHealthCodes, hs.Status) {
		return healthStatus{}, fmt.Errorf("the health script returned status %q, which Argo CD shows as Unknown", hs.Status)
	}
	return hs, nil
}

// luaValue converts a decoded object as Argo CD's decodeValue does.
func luaValue(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(luaValue(l, e))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetH(lua.LString(k), luaValue(l, e))
		}
		return t
	}
	return lua.LNil
}

// healthTests is Argo CD's own format for testing a health customization
// (resource_customizations/<group>/<Kind>/health_test.yaml in argo-cd).
type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

func readObject(t *testing.T, path string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal(readFile(t, path), &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return obj
}

// Every status the envtest suite recorded (controllers/argocd_statuses_test.go)
// gets the health Argo CD must show, with its exact message.
func TestArgoCDHealthOfRecordedStatuses(t *testing.T) {
	script := string(readFile(t, argoScript))
	var tests healthTests
	if err := yaml.UnmarshalStrict(readFile(t, argoDir+"/health_test.yaml"), &tests); err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	seen := map[string]bool{}
	for _, tc := range tests.Tests {
		covered[filepath.Base(tc.InputPath)] = true
		seen[tc.HealthStatus.Status] = true
		t.Run(strings.TrimSuffix(filepath.Base(tc.InputPath), ".json"), func(t *testing.T) {
			got, err := runHealthLua(script, readObject(t, filepath.Join(argoDir, tc.InputPath)))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.HealthStatus {
				t.Errorf("health of %s:\n got  %+v\n want %+v", tc.InputPath, got, tc.HealthStatus)
			}
		})
	}
	// Each recorded phase has an expectation, and each health a script can
	// give a RAGService is shown by at least one real status.
	entries, err := os.ReadDir(argoDir + "/testdata")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !covered[e.Name()] {
			t.Errorf("testdata/%s has no case in health_test.yaml", e.Name())
		}
	}
	for _, s := range []string{"Healthy", "Progressing", "Suspended", "Degraded"} {
		if !seen[s] {
			t.Errorf("no case expects %s", s)
		}
	}
}

// Objects the operator never writes but Argo CD may still be shown: the
// script must not fail on them.
func TestArgoCDHealthOfOddObjects(t *testing.T) {
	script := string(readFile(t, argoScript))
	checkHealthCases(t, script, []healthCase{
		{"no status at all", `{"metadata":{"name":"docs","generation":1}}`,
			healthStatus{"Progressing", "Waiting for the operator to observe generation 1 (observed: 0)"}},
		{"no generation", `{"metadata":{"name":"docs"},"status":{}}`,
			healthStatus{"Progressing", "Waiting for the operator to report Ready"}},
		{"conditions without messages", `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,
			"conditions":[{"type":"Stalled","status":"True","reason":"InvalidSpec"}]}}`,
			healthStatus{"Degraded", "InvalidSpec"}},
		{"Ready of an older generation", `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,
			"conditions":[{"type":"Ready","status":"True","observedGeneration":2,"message":"all replicas of the stable revision are ready"}]}}`,
			healthStatus{"Progressing", "Waiting for the operator to report on generation 3"}},
		{"stable pods lost", `{"metadata":{"name":"docs","generation":1},"status":{"observedGeneration":1,"phase":"Progressing",
			"conditions":[{"type":"Ready","status":"False","reason":"MinimumReplicasUnavailable","message":"1 of 2 stable replicas ready"}]}}`,
			healthStatus{"Progressing", "1 of 2 stable replicas ready"}},
	})
}

// A handover, as the operator's planner writes it (condition Reconciling,
// reason Promoting, while the canary's Deployment grows; then Ready with the
// previous revision retiring): Progressing, then Healthy, never Suspended or
// Degraded, so a sync that waits for health waits for the handover and not
// for the retiring revision's scaleDownDelay. (The statuses recorded by `make
// argocd-statuses` can replace these once they include a handover.)
func TestArgoCDHealthOfAHandover(t *testing.T) {
	script := string(readFile(t, argoScript))
	checkHealthCases(t, script, []healthCase{
		{"the canary's Deployment grows", `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,"phase":"Progressing",
			"stableRevision":"rev-a","canaryRevision":"rev-b","promoting":true,"conditions":[
			{"type":"Ready","status":"False","reason":"Promoting","observedGeneration":3,"message":"Promoting revision rev-b: 2/4 of its pods ready; it serves as stable once all are"},
			{"type":"Reconciling","status":"True","reason":"Promoting","observedGeneration":3,"message":"Promoting revision rev-b: 2/4 of its pods ready; it serves as stable once all are"}]}}`,
			healthStatus{"Progressing", "Promoting revision rev-b: 2/4 of its pods ready; it serves as stable once all are"}},
		{"handed over, the previous revision retiring", `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,"phase":"Healthy",
			"stableRevision":"rev-b","retiring":{"revision":"rev-a","since":"2026-12-07T10:00:00Z"},"conditions":[
			{"type":"Ready","status":"True","reason":"Promoted","observedGeneration":3,"message":"Promoted revision rev-b: its pods now serve as stable; revision rev-a is removed after 30s"}]}}`,
			healthStatus{"Healthy", "Promoted revision rev-b: its pods now serve as stable; revision rev-a is removed after 30s"}},
	})
}

// The script does what Argo CD allows and nothing else: a script that reaches
// for the string library (absent for custom health checks) fails here as it
// would in Argo CD.
func TestArgoCDRunnerRefusesWhatArgoCDRefuses(t *testing.T) {
	obj := map[string]any{"metadata": map[string]any{"name": "docs"}}
	if _, err := runHealthLua(`return {status = string.lower("HEALTHY")}`, obj); err == nil {
		t.Error("the string library is available, but Argo CD does not open it for custom health checks")
	}
	if _, err := runHealthLua(`return {status = "Fine"}`, obj); err == nil {
		t.Error("an invalid health status was accepted")
	}
	if _, err := runHealthLua(`while true do end`, obj); err == nil {
		t.Error("a script that never ends was not stopped")
	}
	if hs, err := runHealthLua(`return {status = "Healthy", message = obj.metadata.name}`, obj); err != nil || hs != (healthStatus{"Healthy", "docs"}) {
		t.Errorf("got %+v, %v", hs, err)
	}
}

// argocdCMHeader is the top of config/argocd/argocd-cm.yaml, before the script.
const argocdCMHeader = `# Argo CD health check for RAGServices: merge into the argocd-cm ConfigMap of
# your Argo CD install, then Argo CD shows each RAGService as Healthy,
# Progressing, Suspended (a rollout waiting for a promote or paused by the spec)
# or Degraded (rolled back, or a spec the operator cannot act on).
#   kubectl -n argocd patch configmap argocd-cm --type merge --patch-file config/argocd/argocd-cm.yaml
# The script is config/argocd/rag.ragops.io/RAGService/health.lua.
apiVersion: v1
kind: ConfigMap
metadata:
  name: argocd-cm
  namespace: argocd
data:
  ` + argoCMKey + `: |
`

// The argocd-cm patch and the docs carry the script itself, not a copy that
// drifted. -update rewrites the patch from the script.
func TestArgoCDSnippetsCarryTheScript(t *testing.T) {
	script := string(readFile(t, argoScript))
	if *update {
		var b strings.Builder
		b.WriteString(argocdCMHeader)
		for _, line := range strings.SplitAfter(script, "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString("    ")
			}
			b.WriteString(line)
		}
		if err := os.WriteFile(argoCMFile, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cm struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   map[string]string `json:"metadata"`
		Data       map[string]string `json:"data"`
	}
	patch := readFile(t, argoCMFile)
	if err := yaml.UnmarshalStrict(patch, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Metadata["name"] != "argocd-cm" {
		t.Errorf("%s is not a patch of ConfigMap argocd-cm: %s %v", argoCMFile, cm.Kind, cm.Metadata)
	}
	if got := cm.Data[argoCMKey]; got != script {
		t.Errorf("%s: data[%s] differs from %s: rewrite it with `go test ./test/platform -run TestArgoCDSnippetsCarryTheScript -args -update`", argoCMFile, argoCMKey, argoScript)
	}
	if docs := string(readFile(t, root+"/docs/install.md")); !strings.Contains(docs, string(patch)) {
		t.Errorf("docs/install.md does not show %s verbatim", argoCMFile)
	}
}

// healthCase is a RAGService (as JSON) and the health the script must give it.
type healthCase struct {
	name string
	obj  string
	want healthStatus
}

func checkHealthCases(t *testing.T, script string, cases []healthCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			if err := json.Unmarshal([]byte(tc.obj), &obj); err != nil {
				t.Fatal(err)
			}
			got, err := runHealthLua(script, obj)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

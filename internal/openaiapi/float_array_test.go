package openaiapi

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// referenceFloats is what ParseFloat32Array must agree with: encoding/json on
// the whole document. ok is false when it refuses.
func referenceFloats(doc []byte) (v []float32, ok bool) {
	err := json.Unmarshal(doc, &v)
	return v, err == nil
}

// parseWhole is ParseFloat32Array on a whole document: the array, then only
// whitespace.
func parseWhole(doc []byte) ([]float32, bool) {
	v, n, err := ParseFloat32Array(nil, doc)
	if err != nil || len(bytes.TrimLeft(doc[n:], " \t\r\n")) != 0 {
		return nil, false
	}
	return v, true
}

// floatArrayCases are the inputs that decide a float parser's correctness:
// exponents, signed zero, subnormals, 17-digit mantissas, the edges of
// float32's range, huge exponents, and the JSON number grammar's corners.
var floatArrayCases = []string{
	`[]`, ` [ ] `, `[0]`, `[-0]`, `[-0.0]`, `[0e0]`, `[-0e-0]`, `[1]`, `[-1]`, `[1.5,-2.25]`,
	`[1e0]`, `[1E2]`, `[1e+2]`, `[1e-2]`, `[2.5E-3]`, `[123456789e-9]`, `[0.000001]`, `[1e-7]`,
	`[0.1]`, `[0.2]`, `[0.30000000000000004]`, `[0.012345678]`, `[-0.0061979056]`,
	`[1.0000000596046448]`, `[1.00000005960464477539]`, `[1.0000000596046447]`, `[1.0000000596046449]`, // float32 halfway cases
	`[16777217]`, `[16777216.5]`, `[33554435]`, `[9007199254740993]`, `[12345678901234567890123]`,
	`[0.12345678901234567]`, `[1.2345678901234567e-20]`, `[98765432109876543e-25]`,
	`[1.401298464324817e-45]`, `[1e-45]`, `[7.006492321624085e-46]`, `[7.006492321624087e-46]`, `[1e-46]`, `[1.17549435e-38]`, `[1.1754942e-38]`,
	`[3.4028234663852886e38]`, `[3.4028235e38]`, `[3.4028235677973366e38]`, `[3.4028236e38]`, `[3.5e38]`, `[-3.5e38]`,
	`[1e38]`, `[1e39]`, `[1e400]`, `[-1e400]`, `[1e-400]`, `[1e999999999999]`, `[1e-999999999999]`, `[0e999999999999]`,
	`[` + strings.Repeat("9", 400) + `]`, `[0.` + strings.Repeat("0", 400) + `1]`, `[1` + strings.Repeat("0", 38) + `]`,
	`[null]`, `[1,null,2]`, `[ 1 , 2 ]`, "[1,\n\t2\r]", `null`,
	`[01]`, `[-01]`, `[00]`, `[1.]`, `[.5]`, `[-]`, `[+1]`, `[1e]`, `[1e+]`, `[1e-]`, `[1.e2]`, `[-.5]`, `[0x10]`, `[1_000]`,
	`[NaN]`, `[Infinity]`, `[-Infinity]`, `[inf]`, `[1,]`, `[,1]`, `[1 2]`, `[1;2]`, `[`, `[1`, `[1,`, `]`, ``, ` `,
	`["1"]`, `[true]`, `[false]`, `[[1]]`, `[{}]`, `[nul]`, `[nulll]`, `[1]x`, `[1] `, `[1][2]`, `{}`, `1`, `"x"`,
}

func TestParseFloat32ArrayAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range floatArrayCases {
		ref, refOK := referenceFloats([]byte(c))
		if refOK && ref == nil {
			continue // the document null: no array to parse
		}
		got, ok := parseWhole([]byte(c))
		if ok != refOK || ok && !sameBits([][]float32{got}, [][]float32{ref}) {
			t.Errorf("%.60q: got %v (ok %v), encoding/json %v (ok %v)", c, got, ok, ref, refOK)
		}
	}
}

func TestParseFloat32ArrayValues(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	tests := []struct {
		in   string
		want []float32
	}{
		{`[-0]`, []float32{negZero}},
		{`[1.401298464324817e-45]`, []float32{math.SmallestNonzeroFloat32}},
		{`[7.006492321624087e-46]`, []float32{math.SmallestNonzeroFloat32}}, // just above half the smallest: rounds up
		{`[1e-46]`, []float32{0}},                                           // underflow is 0, as strconv and encoding/json say
		{`[3.4028235e38]`, []float32{math.MaxFloat32}},
		{`[1.00000005960464477539]`, []float32{1}}, // halfway between 1 and the next float32: to even
		{`[16777217]`, []float32{16777216}},
		{`[1,null,2]`, []float32{1, 0, 2}},
	}
	for _, tt := range tests {
		got, ok := parseWhole([]byte(tt.in))
		if !ok || !sameBits([][]float32{got}, [][]float32{tt.want}) {
			t.Errorf("%s: got %v (ok %v), want %v", tt.in, got, ok, tt.want)
		}
	}
	for _, bad := range []string{`[1e39]`, `[1e400]`, `[1e999999999999]`, `[-3.5e38]`} {
		if _, _, err := ParseFloat32Array(nil, []byte(bad)); err == nil || !strings.Contains(err.Error(), "does not fit a float32") {
			t.Errorf("%s: error %v, want one saying it does not fit a float32", bad, err)
		}
	}
}

// FuzzParseFloat32Array: on every input, ParseFloat32Array accepts what
// encoding/json accepts into a []float32, refuses what it refuses, and gives the
// same bits.
func FuzzParseFloat32Array(f *testing.F) {
	for _, c := range floatArrayCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		ref, refOK := referenceFloats(doc)
		if refOK && ref == nil {
			return // the document null
		}
		got, ok := parseWhole(doc)
		if ok != refOK {
			t.Fatalf("%q: ParseFloat32Array ok %v, encoding/json ok %v", doc, ok, refOK)
		}
		if ok && !sameBits([][]float32{got}, [][]float32{ref}) {
			t.Fatalf("%q: got %v, encoding/json %v", doc, got, ref)
		}
	})
}

// Numbers at and around the midpoints between neighbouring float32s, where a
// parser that rounds through float64 goes wrong, written with up to 17 digits:
// every one rounds as strconv.ParseFloat(s, 32) rounds it.
func TestParseFloat32ArrayAtMidpoints(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var doc []byte
	var want []float32
	for range 20000 {
		x := math.Float32frombits(rng.Uint32() & 0x7f7fffff) // finite, positive
		y := math.Nextafter32(x, float32(math.Inf(1)))
		mid := (float64(x) + float64(y)) / 2 // exact: float32s have 24 bits
		for _, v := range []float64{mid, math.Nextafter(mid, 0), math.Nextafter(mid, math.Inf(1))} {
			for _, prec := range []int{-1, 9, 12, 17} {
				s := strconv.FormatFloat(v, 'g', prec, 64)
				f, err := strconv.ParseFloat(s, 32)
				if err != nil {
					continue
				}
				if len(doc) > 0 {
					doc = append(doc, ',')
				}
				doc = append(doc, s...)
				want = append(want, float32(f))
			}
		}
	}
	got, ok := parseWhole(append(append([]byte{'['}, doc...), ']'))
	if !ok || !sameBits([][]float32{got}, [][]float32{want}) {
		for i := range min(len(got), len(want)) {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("number %d: got %v, strconv %v", i, got[i], want[i])
			}
		}
		t.Fatalf("ok %v, %d numbers, want %d", ok, len(got), len(want))
	}
}

package openaiapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"
)

// DecodeResponse reads an embeddings response body holding exactly n vectors, in
// either encoding, and returns them ordered by index with the prompt tokens.
//
// It reads the answer in one pass, without reflection: base64 strings are
// decoded from the body in place, and float arrays go number by number from the
// body to strconv.ParseFloat, which rounds to float32 exactly as encoding/json
// does (ParseFloat32Array). The embedding server decodes one such answer per
// coalesced upstream call, on the path of every request in the batch, and
// upstreams answer float arrays as often as base64 (Ollama, LocalAI and some
// TEI versions ignore encoding_format).
//
// Where json.Unmarshal into EmbeddingResponse followed by Vectors(n) also
// succeeds, both return the same vectors (TestDecodeResponseMatchesReference,
// FuzzDecodeResponse); keys match as encoding/json matches them, exactly or else
// case-insensitively. It is stricter about what it reads ("data" at most once, a
// vector in every embedding) and does not validate every value it skips beyond
// finding its end.
func DecodeResponse(body []byte, n int) ([][]float32, int, error) {
	d := responseDecoder{scanner: scanner{b: body}, out: make([][]float32, n)}
	if d.peek() != '{' {
		return nil, 0, errors.New("answer is not a JSON object")
	}
	d.object(d.top)
	if d.err == nil {
		if d.ws(); d.i < len(d.b) {
			d.fail("data after the answer's object at offset %d", d.i)
		}
	}
	switch {
	case d.err != nil:
		return nil, 0, d.err
	case d.got != n:
		return nil, 0, fmt.Errorf("got %d embeddings, want %d", d.got, n)
	}
	return d.out, d.tokens, nil
}

// ParseFloat32Array reads one JSON array of numbers (null elements read as 0)
// at the start of b, appending to dst, and returns the values and the length of
// the array's text. It accepts and refuses exactly what json.Unmarshal into a
// []float32 accepts and refuses when the array is the whole document, and
// gives the same bits (FuzzParseFloat32Array): the JSON number grammar, numbers
// rounded to the nearest float32, and a number beyond float32's range an error.
func ParseFloat32Array(dst []float32, b []byte) ([]float32, int, error) {
	s := scanner{b: b}
	v := s.floatArray(dst)
	if s.err != nil {
		return nil, 0, s.err
	}
	return v, s.i, nil
}

// scanner walks JSON text; the first error stops it.
type scanner struct {
	b   []byte
	i   int
	err error
}

func (s *scanner) fail(format string, args ...any) {
	if s.err == nil {
		s.err = fmt.Errorf(format, args...)
	}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) bool {
	if s.peek() != c {
		s.fail("want %q at offset %d", c, s.i)
		return false
	}
	s.i++
	return true
}

func (s *scanner) literal(word string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.fail("invalid literal at offset %d", s.i)
		return false
	}
	s.i += len(word)
	return true
}

// str reads a string at s.i (its opening quote) and returns its raw content
// without the quotes, and whether it holds escapes. Raw control characters are
// refused, as JSON requires.
func (s *scanner) str() (raw []byte, escaped bool) {
	s.i++ // the opening quote
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped
		case c == '\\':
			escaped = true
			s.i += 2
		case c < 0x20:
			s.fail("control character in string at offset %d", s.i)
			return nil, false
		default:
			s.i++
		}
	}
	s.fail("unterminated string")
	return nil, false
}

// number reads a JSON number at s.i and returns its text and whether it is an
// integer (no fraction, no exponent).
func (s *scanner) number() (text []byte, integer bool) {
	start, b := s.i, s.b
	i := s.i
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		s.fail("invalid number at offset %d", start)
		return nil, false
	}
	integer = true
	if i < len(b) && b[i] == '.' {
		i++
		integer = false
		if digits() == 0 {
			s.fail("invalid number at offset %d", start)
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		integer = false
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			s.fail("invalid number at offset %d", start)
			return nil, false
		}
	}
	s.i = i
	return b[start:i], integer
}

// integer reads a JSON number into an int as encoding/json does: an integer
// literal in range, or an error. null leaves *v as it is.
func (s *scanner) integer(v *int) {
	switch c := s.peek(); {
	case c == 'n':
		s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		text, isInt := s.number()
		if s.err != nil {
			return
		}
		n, err := strconv.ParseInt(unsafeString(text), 10, 64)
		if !isInt || err != nil || n != int64(int(n)) {
			s.fail("number %s is not an integer", text)
			return
		}
		*v = int(n)
	default:
		s.fail("want an integer at offset %d", s.i)
	}
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// skip passes over one value of any kind, checking only what it must to find
// its end.
func (s *scanner) skip(depth int) {
	if depth > maxDepth {
		s.fail("answer nested deeper than %d", maxDepth)
		return
	}
	switch c := s.peek(); {
	case c == '"':
		s.str()
	case c == '{':
		s.object(func(_ []byte, _ bool) { s.skip(depth + 1) })
	case c == '[':
		s.i++
		if s.peek() == ']' {
			s.i++
			return
		}
		for s.err == nil {
			s.skip(depth + 1)
			if s.peek() == ',' {
				s.i++
				continue
			}
			s.expect(']')
			return
		}
	case c == 't':
		s.literal("true")
	case c == 'f':
		s.literal("false")
	case c == 'n':
		s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		s.number()
	default:
		s.fail("unexpected %q at offset %d", c, s.i)
	}
}

// object reads an object at s.i, calling member for each key (raw, as in str)
// with s.i at the value, which member must consume.
func (s *scanner) object(member func(key []byte, escaped bool)) {
	if !s.expect('{') {
		return
	}
	if s.peek() == '}' {
		s.i++
		return
	}
	for s.err == nil {
		if s.peek() != '"' {
			s.fail("want a key at offset %d", s.i)
			return
		}
		key, escaped := s.str()
		if !s.expect(':') {
			return
		}
		member(key, escaped)
		if s.err != nil {
			return
		}
		if s.peek() == ',' {
			s.i++
			continue
		}
		s.expect('}')
		return
	}
}

// floatArray reads an array of numbers or nulls into dst.
func (s *scanner) floatArray(dst []float32) []float32 {
	if !s.expect('[') {
		return nil
	}
	if s.peek() == ']' {
		s.i++
		return dst
	}
	for {
		switch c := s.peek(); {
		case c == 'n':
			// encoding/json leaves a float for null as it is: a new element is 0.
			if !s.literal("null") {
				return nil
			}
			dst = append(dst, 0)
		case c == '-' || c >= '0' && c <= '9':
			f, ok := s.float32()
			if !ok {
				return nil
			}
			dst = append(dst, f)
		default:
			s.fail("want a number at offset %d", s.i)
			return nil
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return dst
		default:
			s.fail("want ',' or ']' at offset %d", s.i)
			return nil
		}
	}
}

// float32 reads a JSON number at s.i, rounded to the nearest float32 as
// strconv.ParseFloat(text, 32) rounds it, in the same pass as its grammar.
//
// Most numbers take Clinger's fast path: at most 19 significant digits
// (mantissa m below 2^53) and a decimal exponent e in [-22, 22], so m and 10^|e|
// are exact float64s and one multiplication or division gives the correctly
// rounded float64 of the number. Rounding that to float32 is exact too, except
// when the float64 falls exactly halfway between two float32s (it may have been
// rounded there): those, and every other number, go to strconv.ParseFloat. The
// fast path's range (1e-22 to 9e37) holds no float32 subnormal and no overflow.
func (s *scanner) float32() (float32, bool) {
	b, start, i := s.b, s.i, s.i
	neg := i < len(b) && b[i] == '-'
	if neg {
		i++
	}
	var mant uint64
	digits, fracDigits, exp := 0, 0, 0 // significant digits, digits after the point, explicit exponent
	slow := false
	accumulate := func() int {
		n := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			n++
			if mant == 0 && b[i] == '0' {
				continue // a leading zero adds nothing
			}
			if digits == 19 {
				slow = true
				continue
			}
			mant = mant*10 + uint64(b[i]-'0')
			digits++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case accumulate() == 0:
		s.fail("invalid number at offset %d", start)
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if fracDigits = accumulate(); fracDigits == 0 {
			s.fail("invalid number at offset %d", start)
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		expNeg := i < len(b) && b[i] == '-'
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		n := 0
		for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			n++
			if exp < 1e6 { // beyond, only strconv's answer (0 or out of range) matters
				exp = exp*10 + int(b[i]-'0')
			}
		}
		if n == 0 {
			s.fail("invalid number at offset %d", start)
			return 0, false
		}
		if expNeg {
			exp = -exp
		}
	}
	s.i = i
	var f float64
	e := exp - fracDigits
	switch {
	case mant == 0:
		// zero, whatever the exponent
	case slow || mant >= 1<<53 || e < -22 || e > 22:
		return s.slowFloat32(b[start:i])
	case e < 0:
		f = float64(mant) / pow10[-e]
	default:
		f = float64(mant) * pow10[e]
	}
	if math.Float64bits(f)&(1<<29-1) == 1<<28 {
		return s.slowFloat32(b[start:i]) // halfway between two float32s
	}
	if neg {
		f = -f
	}
	return float32(f), true
}

func (s *scanner) slowFloat32(text []byte) (float32, bool) {
	f, err := strconv.ParseFloat(unsafeString(text), 32)
	if err != nil {
		s.fail("number %s does not fit a float32", text)
		return 0, false
	}
	return float32(f), true
}

// pow10 are the powers of ten exact in a float64.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// unsafeString views b as a string for a call that does not keep it
// (strconv's parsers), so parsing a number allocates nothing.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// key reports whether a JSON object key (raw, as str returns it) names field,
// by encoding/json's rule: the same bytes, or the same under Unicode simple case
// folding ("Usage", and even "uſage" with a long s, name "usage"). Upstreams
// write lower case; the rule keeps the two decoders in agreement on the answers
// that do not. A key with escapes is unquoted first (rare, so by encoding/json).
func key(raw []byte, escaped bool, field string) bool {
	if escaped {
		var k string
		if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k) != nil {
			return false
		}
		raw = []byte(k)
	}
	return unsafeString(raw) == field || bytes.EqualFold(raw, []byte(field))
}

type responseDecoder struct {
	scanner
	out     [][]float32
	got     int
	tokens  int
	raw     []byte    // base64 scratch, reused across embeddings
	dims    int       // length of the first vector read
	backing []float32 // room for the vectors still to come, sized after the first
}

// top reads one member of the answer's object.
func (d *responseDecoder) top(k []byte, escaped bool) {
	switch {
	case key(k, escaped, "data"):
		if d.peek() == 'n' {
			d.literal("null")
			return
		}
		if d.got > 0 {
			d.fail(`"data" appears twice`)
			return
		}
		if !d.expect('[') {
			return
		}
		if d.peek() == ']' {
			d.i++
			return
		}
		for d.err == nil {
			d.embedding()
			if d.peek() == ',' {
				d.i++
				continue
			}
			d.expect(']')
			return
		}
	case key(k, escaped, "usage"):
		if d.peek() == 'n' {
			d.literal("null")
			return
		}
		d.object(func(k []byte, escaped bool) {
			if key(k, escaped, "prompt_tokens") {
				d.integer(&d.tokens)
			} else {
				d.skip(1)
			}
		})
	default:
		d.skip(0)
	}
}

// embedding reads one element of "data".
func (d *responseDecoder) embedding() {
	if d.peek() != '{' {
		d.fail("embedding %d is not an object", d.got)
		return
	}
	index := 0 // as encoding/json leaves it when absent
	var vec []float32
	d.object(func(k []byte, escaped bool) {
		switch {
		case key(k, escaped, "index"):
			d.integer(&index)
		case key(k, escaped, "embedding"):
			vec = d.vector(index)
		default:
			d.skip(1)
		}
	})
	if d.err != nil {
		return
	}
	if index < 0 || index >= len(d.out) || d.out[index] != nil {
		d.fail("embedding index %d out of range or repeated", index)
		return
	}
	if vec == nil {
		d.fail("embedding %d has no vector", index)
		return
	}
	d.out[index] = vec
	d.got++
	if d.got == 1 && len(d.out) > 1 {
		// One allocation for the vectors still to come, which are as long as this one.
		d.dims = len(vec)
		d.backing = make([]float32, 0, (len(d.out)-1)*d.dims)
	}
}

// take returns room for a vector of n floats from the shared backing array, or
// a fresh slice when the backing has no room left.
func (d *responseDecoder) take(n int) []float32 {
	if n <= cap(d.backing)-len(d.backing) {
		l := len(d.backing)
		d.backing = d.backing[:l+n]
		return d.backing[l : l : l+n]
	}
	return make([]float32, 0, n)
}

// vector reads a float array or a base64 string of little-endian float32s.
func (d *responseDecoder) vector(index int) []float32 {
	switch d.peek() {
	case '"':
		// The string's bytes in the body, not a copy.
		s, escaped := d.str()
		if d.err != nil {
			return nil
		}
		if escaped {
			// Escapes, such as the "\/" some encoders write for "/": let
			// encoding/json read them exactly.
			var u string
			if err := json.Unmarshal(append(append([]byte{'"'}, s...), '"'), &u); err != nil {
				d.fail("embedding %d: %w", index, err)
				return nil
			}
			s = []byte(u)
		}
		var err error
		d.raw, err = base64.StdEncoding.AppendDecode(d.raw[:0], s)
		if err != nil || len(d.raw)%4 != 0 {
			d.fail("embedding %d: bad base64 float32 data", index)
			return nil
		}
		v := d.take(len(d.raw) / 4)[:len(d.raw)/4]
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.raw[4*i:]))
		}
		return v
	case '[':
		var dst []float32
		if d.got > 0 {
			dst = d.take(d.dims)
		} else if end := bytes.IndexByte(d.b[d.i:], ']'); end > 0 {
			// The first vector: count its numbers (a fast scan) to size it.
			dst = make([]float32, 0, bytes.Count(d.b[d.i:d.i+end], []byte{','})+1)
		}
		v := d.floatArray(dst)
		if d.err != nil {
			d.err = fmt.Errorf("embedding %d: %w", index, d.err)
			return nil
		}
		if v == nil {
			v = []float32{}
		}
		return v
	default:
		d.fail("embedding %d is neither a base64 string nor an array of numbers", index)
		return nil
	}
}

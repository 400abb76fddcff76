package openaiapi

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	jsoniter "github.com/json-iterator/go"
)

// responseJSON reads upstream answers. json-iterator's streaming Iterator reads
// the base64 strings of a batched answer in one pass, where encoding/json scans
// every byte twice and then again per embedding: about 6x faster on a 15-vector
// answer of 384 dimensions (BenchmarkDecodeResponse). The embedding server
// decodes one such answer per coalesced upstream call, on the path of every
// request in the batch.
var responseJSON = jsoniter.Config{}.Froze()

// DecodeResponse reads an embeddings response body holding exactly n vectors, in
// either encoding, and returns them ordered by index with the prompt tokens.
// Where json.Unmarshal into EmbeddingResponse followed by Vectors(n) also
// succeeds, both return the same vectors (TestDecodeResponseMatchesReference,
// FuzzDecodeResponse); keys match as encoding/json matches them, exactly or else
// case-insensitively. It is stricter about what it reads ("data" at most once, a
// vector in every embedding) and, as a streaming reader, does not validate the
// values it skips.
func DecodeResponse(body []byte, n int) ([][]float32, int, error) {
	it := responseJSON.BorrowIterator(body)
	defer responseJSON.ReturnIterator(it)
	d := responseDecoder{out: make([][]float32, n)}
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, 0, errors.New("answer is not a JSON object")
	}
	it.ReadObjectCB(d.field)
	switch {
	case d.err != nil:
		return nil, 0, d.err
	case it.Error != nil:
		return nil, 0, it.Error
	case d.got != n:
		return nil, 0, fmt.Errorf("got %d embeddings, want %d", d.got, n)
	}
	return d.out, d.tokens, nil
}

type responseDecoder struct {
	out    [][]float32
	got    int
	tokens int
	raw    []byte // base64 scratch, reused across embeddings
	err    error
}

// fail records the first semantic error and stops the iteration.
func (d *responseDecoder) fail(err error) bool {
	if d.err == nil {
		d.err = err
	}
	return false
}

// key reports whether a JSON object key names a field, by encoding/json's rule:
// the same bytes, or the same under Unicode simple case folding ("Usage", and
// even "uſage" with a long s, name "usage"). Upstreams write lower case; the
// rule keeps the two decoders in agreement on the answers that do not.
func key(name, field string) bool {
	return name == field || strings.EqualFold(name, field)
}

func (d *responseDecoder) field(it *jsoniter.Iterator, name string) bool {
	switch {
	case key(name, "data"):
		if it.WhatIsNext() == jsoniter.NilValue {
			it.Skip()
			break
		}
		if d.got > 0 {
			return d.fail(errors.New(`"data" appears twice`))
		}
		it.ReadArrayCB(d.embedding)
	case key(name, "usage"):
		if it.WhatIsNext() == jsoniter.NilValue {
			it.Skip()
			break
		}
		it.ReadObjectCB(func(it *jsoniter.Iterator, name string) bool {
			if key(name, "prompt_tokens") {
				d.tokens = it.ReadInt()
			} else {
				it.Skip()
			}
			return it.Error == nil
		})
	default:
		it.Skip()
	}
	return it.Error == nil && d.err == nil
}

// embedding reads one element of "data".
func (d *responseDecoder) embedding(it *jsoniter.Iterator) bool {
	index, haveIndex := 0, false
	var vec []float32
	it.ReadObjectCB(func(it *jsoniter.Iterator, name string) bool {
		switch {
		case key(name, "index"):
			index, haveIndex = it.ReadInt(), true
		case key(name, "embedding"):
			vec = d.vector(it, index)
		default:
			it.Skip()
		}
		return it.Error == nil && d.err == nil
	})
	if it.Error != nil || d.err != nil {
		return false
	}
	if !haveIndex {
		index = 0 // as encoding/json leaves it
	}
	if index < 0 || index >= len(d.out) || d.out[index] != nil {
		return d.fail(fmt.Errorf("embedding index %d out of range or repeated", index))
	}
	if vec == nil {
		return d.fail(fmt.Errorf("embedding %d has no vector", index))
	}
	d.out[index] = vec
	d.got++
	return true
}

// vector reads a float array or a base64 string of little-endian float32s.
func (d *responseDecoder) vector(it *jsoniter.Iterator, index int) []float32 {
	switch it.WhatIsNext() {
	case jsoniter.StringValue:
		// The string's bytes in the body, not a copy. They end at the first
		// quote, escaped or not; a base64 string has no reason to hold one, and
		// one that does fails to decode either way.
		s := it.ReadStringAsSlice()
		if it.Error != nil {
			return nil
		}
		for _, c := range s {
			if c < 0x20 { // raw control characters are invalid JSON
				d.fail(fmt.Errorf("embedding %d: control character in string", index))
				return nil
			}
		}
		if bytes.IndexByte(s, '\\') >= 0 {
			// Escapes, such as the "\/" some encoders write for "/": let
			// encoding/json read them exactly.
			var u string
			if err := json.Unmarshal(append(append([]byte{'"'}, s...), '"'), &u); err != nil {
				d.fail(fmt.Errorf("embedding %d: %w", index, err))
				return nil
			}
			s = []byte(u)
		}
		var err error
		d.raw, err = base64.StdEncoding.AppendDecode(d.raw[:0], s)
		if err != nil || len(d.raw)%4 != 0 {
			d.fail(fmt.Errorf("embedding %d: bad base64 float32 data", index))
			return nil
		}
		v := make([]float32, len(d.raw)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(d.raw[4*i:]))
		}
		return v
	case jsoniter.ArrayValue:
		// Float arrays are the rare case (the client asks for base64), so they
		// take encoding/json's path and its number grammar exactly.
		raw := it.SkipAndReturnBytes()
		if it.Error != nil {
			d.fail(fmt.Errorf("embedding %d: %w", index, it.Error))
			return nil
		}
		v := []float32{}
		if err := json.Unmarshal(raw, &v); err != nil {
			d.fail(fmt.Errorf("embedding %d: %w", index, err))
			return nil
		}
		return v
	default:
		d.fail(fmt.Errorf("embedding %d is neither a base64 string nor an array of numbers", index))
		return nil
	}
}

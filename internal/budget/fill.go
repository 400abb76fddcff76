package budget

// CallLimits bound one upstream call: inputs (the smaller of the server's
// --max-batch-size and the upstream's maxInputsPerCall) and estimated tokens
// (maxTokensPerCall). 0: no bound.
type CallLimits struct {
	MaxInputs int
	MaxTokens int
}

// Fits says whether a call of inputs and tokens is within the limits.
func (c CallLimits) Fits(inputs, tokens int) bool {
	return (c.MaxInputs <= 0 || inputs <= c.MaxInputs) && (c.MaxTokens <= 0 || tokens <= c.MaxTokens)
}

// Split cuts one request, given each input's estimated tokens, into
// consecutive calls that each fit lim, and returns each call's end offset. An
// input over the token limit alone gets a call of its own: the upstream, not
// the server, judges whether it is too long for the model.
func Split(tokens []int, lim CallLimits) []int {
	var ends []int
	n, sum := 0, 0
	for i, t := range tokens {
		if n > 0 && !lim.Fits(n+1, sum+t) {
			ends = append(ends, i)
			n, sum = 0, 0
		}
		n++
		sum += t
	}
	if n > 0 {
		ends = append(ends, len(tokens))
	}
	return ends
}

// Piece is one waiting part of a request (already cut by Split to fit a call).
type Piece struct {
	Inputs, Tokens int
}

// Fill is how many of the waiting pieces, in order, the next call carries:
// as many as fit lim, at least one.
func Fill(waiting []Piece, lim CallLimits) int {
	n, inputs, tokens := 0, 0, 0
	for _, p := range waiting {
		if n > 0 && !lim.Fits(inputs+p.Inputs, tokens+p.Tokens) {
			break
		}
		n++
		inputs += p.Inputs
		tokens += p.Tokens
	}
	return n
}

// EstimateTokens is an upper bound on the tokens of a text for the BPE
// tokenizers OpenAI-compatible models use (cl100k, o200k and their kind):
// every token covers at least one byte, so the byte length never counts too
// few. English runs about four bytes a token, so it counts about four times
// too many for the token budget; the server gives back the difference once
// the upstream reports its usage (Limiter.Refund).
func EstimateTokens(text string) int { return max(1, len(text)) }

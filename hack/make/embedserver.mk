# Embedding server targets. Included by the top Makefile.

OPENAI_COMPAT_DIR := test/openai-compat

.PHONY: test-embedserver
test-embedserver: test-embedserver-fuzz test-openai-compat ## Embedding server extras for `make test`: decoder fuzzing and the official OpenAI client.

.PHONY: test-embedserver-fuzz
# The budget is a count of executions (FUZZCOUNT each, about 10 s here), not a duration:
# with a duration go1.26's fuzz coordinator can report its own deadline as a failure
# ("context deadline exceeded", no crasher written; golang/go#75804, fixed in go1.27).
# Each target runs twice: guided by coverage (go test -fuzz), then from a test binary
# built without coverage instrumentation, whose mutations reach other inputs; that
# second pass found a case-folding disagreement that 2 M guided executions missed.
# A failing input is written to internal/openaiapi/testdata/fuzz/ either way. The
# second pass warns that it runs without coverage guidance: that is its purpose.
FUZZ_PKG := ./internal/openaiapi
FUZZ_TARGETS := FuzzDecodeRequest FuzzDecodeResponse FuzzParseFloat32Array
test-embedserver-fuzz: ## Fuzz the request and upstream-answer decoders and the float32 array parser (against encoding/json), guided and unguided (FUZZCOUNT executions each, default 200000x).
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "go test -fuzz $$t (coverage-guided)"; \
		go test -run '^$$' -fuzz "^$$t\$$" -fuzztime $${FUZZCOUNT:-200000x} $(FUZZ_PKG)/; \
	done
	go test -c -o $(BIN)/openaiapi-fuzz.test $(FUZZ_PKG)/
	@set -e; cd $(FUZZ_PKG) && for t in $(FUZZ_TARGETS); do \
		echo "$$t (without coverage instrumentation)"; \
		$(BIN)/openaiapi-fuzz.test -test.run '^$$' -test.fuzz "^$$t\$$" -test.fuzztime $${FUZZCOUNT:-200000x} \
			-test.fuzzcachedir $(ROOT)/.local/fuzzcache; \
	done

.PHONY: test-openai-compat
test-openai-compat: ## The official openai npm client (pinned, installed with npm ci) against the server on loopback.
	cd $(OPENAI_COMPAT_DIR) && npm ci --no-audit --no-fund
	go test -race -count=1 ./$(OPENAI_COMPAT_DIR)/

.PHONY: bench-embedserver
bench-embedserver: ## Embedding server benchmarks: proxy matrix vs direct and nginx, upload storm, overhead, coalescing, 10k-connection overload, builtin throughput.
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] && apt-get install -y nginx-light >/dev/null 2>&1; } || \
		echo "nginx-light could not be installed: the benchmark skips its nginx rows"
	ulimit -n 65536 2>/dev/null || ulimit -n $$(ulimit -Hn); \
	go test -run '^$$' -bench . -benchmem -count=1 -timeout 30m ./internal/embedbench/ ./internal/embedserver/

.PHONY: run-embedserver
run-embedserver: ## Run the embedding server locally with the builtin model (127.0.0.1:8080, admin :9090).
	go run ./cmd/embedserver --addr 127.0.0.1:8080 --admin-addr 127.0.0.1:9090

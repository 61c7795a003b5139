# memsnap - one Makefile for the tool, the injected hook, the tests and the benchmarks.
#
#   make            build build/memsnap (the hook library is embedded in it)
#   make test       unit tests, then integration tests against real Python processes
#   make asan       the same tests built with AddressSanitizer + UBSan
#   make fuzz       libFuzzer targets for everything that parses untrusted bytes
#   make stress     the long robustness campaigns (SIGKILL, malloc hammering, cycles)
#   make bench      benchmarks, printed as ratios measured side by side in one run
#   make demo       set up, profile a small leaking app, render demo.svg
#   make install PREFIX=/usr/local
#
# Sources are found by wildcard: a new .c file in one of sampler/'s layer folders, proto/ or
# render/ joins the library, a new tests/unit/test_*.c or tests/integration/test_*.c becomes a
# test binary. Which folder may include which is docs/architecture.md's table, checked by
# scripts/check-layout.sh (make check-layout, part of make test).

PREFIX ?= /usr/local
BUILD ?= build
CC ?= cc
FUZZ_CC ?= clang

PKGS := libdw libelf libunwind-ptrace libprotobuf-c zlib libdeflate
WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
CFLAGS ?= -O2 -g
# sampler/'s layers, lowest first: headers are included by bare name from any of them.
LAYERS := common process python inject record cli
LAYER_INC := $(addprefix -Isampler/,$(LAYERS))
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) $(LAYER_INC) -Isampler -Iproto -Irender \
	-I$(BUILD)/gen $(EXTRA_CFLAGS)
LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -lpthread

# The hook runs inside the target: libc only, position independent, no sanitizer. Link-time
# optimisation lets the per-allocation path (wrapper, stack walk, slot table, ring) inline
# across its files: a few percent of an allocation-heavy program's time at rate 1.
HOOK_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -O2 -g -flto -fPIC -fvisibility=hidden \
	-fno-omit-frame-pointer -ftls-model=global-dynamic -Isampler

HOOK_SRC := $(wildcard sampler/hook/*.c)
LIB_SRC := $(filter-out sampler/cli/main.c,$(foreach l,$(LAYERS),$(wildcard sampler/$(l)/*.c))) \
	$(wildcard proto/*.c) $(wildcard render/*.c)
GEN_SRC := $(BUILD)/gen/profile.pb-c.c
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(BUILD)/obj/gen/profile.pb-c.o \
	$(BUILD)/obj/hook_blob.o
UNIT_SRC := $(wildcard tests/unit/test_*.c)
INTEG_SRC := $(wildcard tests/integration/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))
# probe_lib.c is not support code: it becomes libprobe.so, which tests inject into targets.
TEST_SUPPORT := $(filter-out tests/support/probe_lib.c,$(wildcard tests/support/*.c))
PROBE_LIB := $(BUILD)/tests/libprobe.so
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test unit integration asan fuzz stress bench demo install clean format \
	check-format check-layout tools

all: deps $(BUILD)/memsnap

# Installs missing system packages (apt) once; the stamp is refreshed when the script changes.
deps: $(BUILD)/.deps-ok
$(BUILD)/.deps-ok: scripts/install-deps.sh $(wildcard tests/*/package.json)
	@bash scripts/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/gen/profile.pb-c.c $(BUILD)/gen/profile.pb-c.h: proto/profile.proto | $(BUILD)/.deps-ok
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/profile.proto

$(BUILD)/obj/gen/profile.pb-c.o: $(BUILD)/gen/profile.pb-c.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-error -c $< -o $@

$(BUILD)/obj/%.o: %.c $(BUILD)/gen/profile.pb-c.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# The hook library, built once, and embedded into memsnap so the tool is a single file.
$(BUILD)/libmemsnap_hook.so: $(HOOK_SRC) $(wildcard sampler/hook/*.h) | $(BUILD)/.deps-ok
	@mkdir -p $(BUILD)
	$(CC) $(HOOK_CFLAGS) -shared -Wl,-soname,libmemsnap_hook.so -Wl,-z,now -Wl,--no-undefined -o $@ $(HOOK_SRC) -ldl -lpthread

$(BUILD)/obj/hook_blob.o: sampler/inject/hook_blob.S $(BUILD)/libmemsnap_hook.so
	@mkdir -p $(dir $@)
	$(CC) -c -DHOOK_PATH='"$(BUILD)/libmemsnap_hook.so"' $< -o $@

# The SVG viewer's script and style (render/flame.js, flame.css), embedded as C arrays.
$(BUILD)/gen/flame_assets.h: render/flame.js render/flame.css render/embed.sh
	@mkdir -p $(BUILD)/gen
	sh render/embed.sh render/flame.js render/flame.css > $@
$(BUILD)/obj/render/svg.o: $(BUILD)/gen/flame_assets.h

$(BUILD)/libmemsnap.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/memsnap: $(BUILD)/obj/sampler/cli/main.o $(BUILD)/libmemsnap.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LIBS)

# Test support code (process spawning, python discovery) is linked into every test.
$(BUILD)/tests/%: tests/unit/%.c $(TEST_SUPPORT) $(BUILD)/libmemsnap.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/support -o $@ $< $(TEST_SUPPORT) $(BUILD)/libmemsnap.a $(LIBS) \
		-lcmocka

$(BUILD)/tests/%: tests/integration/%.c $(TEST_SUPPORT) $(BUILD)/libmemsnap.a | $(PROBE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/support -o $@ $< $(TEST_SUPPORT) $(BUILD)/libmemsnap.a $(LIBS) \
		-lcmocka

# The library the injector's tests load into live processes.
$(PROBE_LIB): tests/support/probe_lib.c
	@mkdir -p $(dir $@)
	$(CC) $(HOOK_CFLAGS) -shared -Wl,-soname,libprobe.so -o $@ $<

# A do-nothing wrapper of the functions sampled mode wraps: the benchmarks' floor under it.
$(BUILD)/bench/passthru.so: tests/bench/passthru.c sampler/hook/hook_python.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) -O2 -fPIC -shared -Isampler -o $@ $< -ldl

tools: $(BUILD)/memsnap $(BUILD)/libmemsnap_hook.so

unit: deps $(UNIT_BIN)
	@bash scripts/run-tests.sh $(UNIT_BIN)

integration: deps $(BUILD)/memsnap $(INTEG_BIN)
	@MEMSNAP=$(abspath $(BUILD)/memsnap) bash scripts/run-tests.sh $(INTEG_BIN)

# make test: every test CI runs. Unit tests first, then real processes, then the
# browser test of the SVG and a short fuzzing pass over the profile reader.
test: deps check-layout $(BUILD)/memsnap $(UNIT_BIN) $(INTEG_BIN)
	@MEMSNAP=$(abspath $(BUILD)/memsnap) bash scripts/run-tests.sh $(UNIT_BIN) $(INTEG_BIN)
	@MEMSNAP=$(abspath $(BUILD)/memsnap) BUILD=$(BUILD) CFLAGS="$(CFLAGS)" bash scripts/run-parts.sh test-extra $(abspath $(BUILD)/memsnap)

asan: deps
	$(MAKE) BUILD=build/asan CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=undefined" test

fuzz: deps
	@BUILD=$(BUILD) FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) bash scripts/run-parts.sh fuzz

stress: deps $(BUILD)/memsnap
	@MEMSNAP=$(abspath $(BUILD)/memsnap) BUILD=$(BUILD) bash scripts/run-parts.sh stress $(abspath $(BUILD)/memsnap)

bench: deps $(BUILD)/memsnap $(BUILD)/bench/passthru.so
	@MEMSNAP=$(abspath $(BUILD)/memsnap) BUILD=$(BUILD) bash scripts/run-parts.sh bench $(abspath $(BUILD)/memsnap)

demo: deps $(BUILD)/memsnap
	@MEMSNAP=$(abspath $(BUILD)/memsnap) bash scripts/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/memsnap $(DESTDIR)$(PREFIX)/bin/memsnap

FORMAT_SRC = $(wildcard sampler/*/*.[ch] proto/*.[ch] render/*.[ch] tests/*/*.[ch])
format:
	clang-format -i $(FORMAT_SRC)

check-format:
	@clang-format --dry-run -Werror $(FORMAT_SRC)

# Fails on an #include that points up the layers (docs/architecture.md).
check-layout:
	@bash scripts/check-layout.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

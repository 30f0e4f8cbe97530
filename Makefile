# matview developer entry points. `make test` is the test command (CI runs it).
.PHONY: dev test fuzz testenv testenv-down testenv-status build image bench bench-projector bench-gateway bench-operator soak race bench-stores screenshots

test:
	hack/test.sh

# Coverage-guided fuzzing of the Avro and Protobuf decoders (nightly Rust, cargo-fuzz).
FUZZ_SECONDS ?= 300
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) hack/fuzz.sh

# Run it: matview dev with the shop example on its embedded Kafka broker.
dev:
	cargo run --release -- dev

testenv:
	hack/testenv.sh up

# The console's screenshots in the docs (docs/images/console), taken by its
# browser tests in headless Chromium.
screenshots: testenv
	. .testenv/testenv.env; MATVIEW_SCREENSHOTS=$(CURDIR)/docs/images/console \
	  cargo test --test it -- console:: console_views:: console_dead_letters:: console_auth:: dev_rollout::the_pages --test-threads 1

testenv-down:
	hack/testenv.sh down

testenv-status:
	hack/testenv.sh status

build:
	cargo build --release

# The container image without a container engine (buildah, vfs, chroot): target/matview-image.oci.tar
image:
	hack/image.sh

bench:
	cargo bench

# Projector benchmark: N orders into the test broker, one projector to caught-up.
BENCH_EVENTS ?= 2000000
# append, or a table's changelog: upsert or debezium (20 % updates, 5 % deletes)
BENCH_ENVELOPE ?= append
# json, or avro / protobuf through the test environment's schema registry
BENCH_FORMAT ?= json
bench-projector: testenv
	cargo build --release
	. .testenv/testenv.env; target/release/matview bench projector \
	  --bootstrap-servers $$MATVIEW_KAFKA_BOOTSTRAP --events $(BENCH_EVENTS) \
	  --envelope $(BENCH_ENVELOPE) --format $(BENCH_FORMAT) \
	  --schema-registry $$MATVIEW_SCHEMA_REGISTRY --broker-pid $$(cat .testenv/pids/kafka)

# Operator at scale: N views, one operator, time until every view is reconciled.
BENCH_VIEWS ?= 1000
bench-operator: testenv
	python3 hack/bench-operator.py $(BENCH_VIEWS)

# Gateway benchmark: two projectors behind the gateway, all on this machine.
# The row cache is sized to hold every row (~1.4 KiB each): keys are read
# uniformly at random, the worst case for a cache.
BENCH_KEYS ?= 100000
BENCH_ROW_CACHE_MIB ?= 256
bench-gateway: testenv
	cargo build --release
	. .testenv/testenv.env; target/release/matview bench gateway \
	  --bootstrap-servers $$MATVIEW_KAFKA_BOOTSTRAP --keys $(BENCH_KEYS) \
	  --row-cache-mib $(BENCH_ROW_CACHE_MIB)

# Soak (not part of `make test`): a projector at a steady rate with readers
# for SOAK_MINUTES; CSV and PNG in target/soak; fails if memory grows.
SOAK_MINUTES ?= 30
soak: testenv
	cargo build --release
	python3 hack/soak.py --minutes $(SOAK_MINUTES)

# The race (not part of `make test`): matview and the Kafka Streams peers
# (race/kafka-streams: expert, exactly-once, naive) build the same view from
# the same topic, one after the other; rows compared, figures side by side.
RACE_EVENTS ?= 200000
RACE_PEERS ?= expert,exactly-once,naive
race: testenv
	cargo build --release
	mvn -q -B -f race/kafka-streams/pom.xml package -DskipTests
	python3 hack/race.py --events $(RACE_EVENTS) --peers $(RACE_PEERS)

# Store comparison (not part of `make test`): matview's store (redb) and
# fjall on the projector's workload, no broker (bench/stores). Add RocksDB with
# BENCH_STORE_FEATURES=fjall,rocksdb: it links Debian's librocksdb-dev 7.8
# (apt-get install librocksdb-dev libclang-dev) instead of a C++ build.
BENCH_STORE_ORDERS ?= 2000000
BENCH_STORE_FEATURES ?= fjall
export ROCKSDB_LIB_DIR ?= /usr/lib/x86_64-linux-gnu
bench-stores:
	cargo run --release --manifest-path bench/stores/Cargo.toml --target-dir target \
	  --features $(BENCH_STORE_FEATURES) -- --orders $(BENCH_STORE_ORDERS)

# matview developer entry points. `make test` is the test command (CI runs it).
.PHONY: test testenv testenv-down testenv-status build bench crds

test:
	hack/test.sh

testenv:
	hack/testenv.sh up

testenv-down:
	hack/testenv.sh down

testenv-status:
	hack/testenv.sh status

build:
	cargo build --release

bench:
	cargo bench

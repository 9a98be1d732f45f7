# Shared by layers/*/Makefile. SAM's makefile builder runs `make build-<LogicalId>` with
# ARTIFACTS_DIR set; the recipe fills $(ARTIFACTS_DIR)/python, which Lambda mounts on
# sys.path as /opt/python.
#
# pip --platform/--python-version with --only-binary=:all: takes the wheels built for the
# Lambda target whatever machine runs the build, so an x86_64 laptop with Python 3.11
# builds arm64/cp313 layers without Docker. Nothing is compiled for the host.

# Keep these defaults equal to the template's Architecture and Runtime defaults
# (tests/unit/test_template.py checks it). To target something else, override both:
#   make build ARCHITECTURE=x86_64 RUNTIME=python3.12
ARCHITECTURE ?= arm64
RUNTIME      ?= python3.13
PYTHON       ?= python3

LAMBDA_MACHINE_arm64  := aarch64
LAMBDA_MACHINE_x86_64 := x86_64
LAMBDA_MACHINE := $(LAMBDA_MACHINE_$(ARCHITECTURE))
ifeq ($(LAMBDA_MACHINE),)
$(error ARCHITECTURE=$(ARCHITECTURE): expected arm64 or x86_64)
endif
PYTHON_VERSION := $(patsubst python%,%,$(RUNTIME))
ifeq ($(filter 3.%,$(PYTHON_VERSION)),)
$(error RUNTIME=$(RUNTIME): expected pythonX.Y)
endif

# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), so manylinux_2_28
# wheels load there; pip also accepts every older manylinux tag for these.
PIP_PLATFORMS := manylinux_2_28_$(LAMBDA_MACHINE) manylinux2014_$(LAMBDA_MACHINE)

# --no-deps: each requirements.txt pins its whole closure minus what the Lambda runtime
# already ships (boto3, botocore and their dependencies); layers/check_layer.py fails
# the build output if a pinned package needs something that is neither.
# --no-compile: .pyc files written by the host's Python would be for the wrong version.
PIP_INSTALL = $(PYTHON) -m pip install \
	--disable-pip-version-check --root-user-action=ignore --no-input --no-compile --no-deps \
	$(addprefix --platform ,$(PIP_PLATFORMS)) \
	--python-version $(PYTHON_VERSION) --implementation cp --only-binary=:all:

# $(call install_requirements,<requirements file>)
define install_requirements
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (SAM sets it)" >&2; exit 2; }
	rm -rf "$(ARTIFACTS_DIR)/python"
	$(PIP_INSTALL) --target "$(ARTIFACTS_DIR)/python" -r $(1)
endef

# Byte code and test suites are dead weight in a layer. *.dist-info/ stays whole: it
# carries the licence notices of the libraries the wheels bundle (LGPL libheif among
# them), which must ship with the binaries; layers/check_layer.py fails without them.
define prune_layer
	find "$(ARTIFACTS_DIR)/python" -depth ! -path '*.dist-info/*' \( -name __pycache__ -o -name tests -o -name '*-stubs' -o -name '*.pyc' \) -exec rm -rf {} +
endef

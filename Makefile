# Build and install wxtoken with its systemd units, man pages and shell completions.
#
#   make                      # cargo build --release, then the man pages and completions
#   sudo make install         # binary, units, sysusers entry, docs, completions under PREFIX
#   sudo make uninstall       # removes them again; keeps /etc/wxtoken and /var/lib/wxtoken
#   make deb                  # the Debian package (cargo deb), with the man pages and completions
#   make portable             # the one x86_64 binary every artifact carries: glibc >= 2.17 (zig)
#   make dist                 # target/dist/wxtoken-VERSION-x86_64-linux.tar.gz (+ .sha256, install.sh)
#   make rpm                  # the RPM (cargo generate-rpm), same files as the .deb
#   make image                # a container image FROM scratch with the portable binary (podman)
#
# The artifacts (deb, rpm, dist) carry the portable binary, not the native `cargo build --release`
# one: built with `cargo zigbuild --target x86_64-unknown-linux-gnu.2.17` against glibc 2.17's
# symbols, it runs on every x86_64 Linux with glibc 2.17 or newer (CentOS 7, Debian 8 and later).
# cargo-zigbuild and zig come from PyPI into $(ZIG_VENV) (`make zig-venv`, done by `make portable`
# when cargo-zigbuild is not on PATH). docs/PACKAGING.md says what each artifact installs where.
#
# PREFIX defaults to /usr/local (binary in /usr/local/bin, units in /usr/local/lib/systemd/system,
# the sysusers entry in /usr/local/lib/sysusers.d: systemd reads all three). The unit files in
# systemd/ name /usr/bin/wxtoken and /usr/share/doc/wxtoken/README.md, the paths of the Debian
# package (PREFIX=/usr); `make install` rewrites ExecStart= to $(BINDIR)/wxtoken and Documentation=
# to $(DOCDIR)/README.md, so the installed units name the installed files.
# Configuration stays in /etc/wxtoken whatever the PREFIX (the units name it).
#
# The man pages (wxtoken.1, wxtoken-SUBCOMMAND.1) and the bash, zsh and fish completions are
# generated from the clap definitions by examples/gen-docs.rs into $(ASSETS) (target/assets, where
# `cargo deb` takes them from too). Completions go where the shells look for them under PREFIX:
# bash-completion and man-db read /usr/local/share like /usr/share; zsh reads
# /usr/local/share/zsh/site-functions (Debian's zsh: /usr/share/zsh/vendor-completions for
# PREFIX=/usr, hence ZSHCOMPDIR); fish reads $(PREFIX)/share/fish/vendor_completions.d when
# XDG_DATA_DIRS names $(PREFIX)/share (desktop sessions do; for /usr/local elsewhere, set
# FISHCOMPDIR=/etc/fish/completions).
#
# DESTDIR stages the files into another root (a package build, a container image): then nothing
# runs on this host; otherwise install also runs packaging/install.sh --host-setup (the tarball's
# installer does the same): with systemd running, systemd-sysusers creates the wxtoken user and
# systemd is reloaded; without, groupadd/useradd create it, /var/lib/wxtoken is made (wxtoken,
# 0750) and /etc/cron.d/wxtoken runs the refresh every minute (docs/PACKAGING.md). Besides the
# units and docs, install puts the --on-change hooks in $(HOOKDIR) (where the example settings
# name them), the PHP and Python readers in $(READERDIR), and the cron file as an example in
# $(DOCDIR). The binary is taken from $(CARGO_TARGET_DIR)/release (override with BIN=path).

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
UNITDIR ?= $(LIBDIR)/systemd/system
SYSUSERSDIR ?= $(LIBDIR)/sysusers.d
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/wxtoken
MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
CONFDIR ?= /etc/wxtoken

LIBEXECDIR ?= $(LIBDIR)/wxtoken
HOOKDIR ?= $(LIBEXECDIR)/hooks
READERDIR ?= $(DATADIR)/wxtoken

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN ?= $(CARGO_TARGET_DIR)/release/wxtoken
ASSETS ?= target/assets

# The portable build (deb, rpm, dist): cargo-zigbuild's triple with the glibc version appended.
GLIBC_MIN := 2.17
PORTABLE_TRIPLE := x86_64-unknown-linux-gnu
PORTABLE_BIN = $(CARGO_TARGET_DIR)/$(PORTABLE_TRIPLE)/release/wxtoken
ZIG_VENV ?= target/zig-venv
# Pinned: the versions measured in docs/PACKAGING.md.
ZIG_PIP_PACKAGES ?= ziglang==0.17.1 cargo-zigbuild==0.24.1
PYTHON3 ?= python3
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -n1)
DISTDIR ?= target/dist
DIST_NAME := wxtoken-$(VERSION)-x86_64-linux

UNITS := wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path
DOCS := $(wildcard README.md)

INSTALL ?= install
SED ?= sed

.PHONY: all build docs deb rpm dist image portable zig-venv install uninstall check-bin check-docs

all: build docs

build:
	$(CARGO) build --release --locked

docs:
	$(CARGO) run --locked --quiet --example gen-docs -- "$(ASSETS)" >/dev/null

# cargo-zigbuild from $(ZIG_VENV) unless it is on PATH already (cargo install cargo-zigbuild).
zig-venv:
	test -x "$(ZIG_VENV)/bin/cargo-zigbuild" || { $(PYTHON3) -m venv "$(ZIG_VENV)" && \
		"$(ZIG_VENV)/bin/pip" install --quiet $(ZIG_PIP_PACKAGES); }

# One binary for every x86_64 glibc >= $(GLIBC_MIN); fails when it needs a newer symbol version.
portable:
	@command -v cargo-zigbuild >/dev/null || $(MAKE) --no-print-directory zig-venv
	PATH="$(abspath $(ZIG_VENV))/bin:$$PATH" $(CARGO) zigbuild --release --locked --target $(PORTABLE_TRIPLE).$(GLIBC_MIN)
	sh packaging/glibc-max.sh "$(PORTABLE_BIN)" $(GLIBC_MIN)
	@echo "$(PORTABLE_BIN): $$(stat -c %s "$(PORTABLE_BIN)") bytes (goal <= 2621440)"

# cargo deb reads the generated files from target/assets (Cargo.toml), whatever ASSETS says, and
# with --target the binary from $(CARGO_TARGET_DIR)/$(PORTABLE_TRIPLE)/release: the portable one,
# packed as built (--no-strip: it is stripped already; the .deb, .rpm and tarball carry one file).
deb: portable
	$(CARGO) run --locked --quiet --example gen-docs -- target/assets >/dev/null
	$(CARGO) deb --locked --no-build --no-strip --target $(PORTABLE_TRIPLE)

# cargo generate-rpm (cargo install cargo-generate-rpm): the same files as the .deb, from
# Cargo.toml's [package.metadata.generate-rpm]; target/generate-rpm/wxtoken-VERSION-1.x86_64.rpm.
rpm: portable
	$(CARGO) run --locked --quiet --example gen-docs -- target/assets >/dev/null
	$(CARGO) generate-rpm --target $(PORTABLE_TRIPLE) --target-dir "$(CARGO_TARGET_DIR)" --payload-compress xz -o target/generate-rpm/wxtoken-$(VERSION)-1.x86_64.rpm
	@ls target/generate-rpm/wxtoken-$(VERSION)-1.x86_64.rpm

# The tarball: the portable binary, units, sysusers entry, cron file, example settings, man pages,
# completions, hooks, readers, README, install.sh (packaging/install.sh); and its SHA-256.
dist: portable
	$(CARGO) run --locked --quiet --example gen-docs -- "$(ASSETS)" >/dev/null
	sh packaging/make-dist.sh "$(PORTABLE_BIN)" "$(ASSETS)" "$(DISTDIR)" "$(DIST_NAME)"

# The container image (packaging/container/Containerfile): FROM scratch, the portable binary, its
# shared libraries from this host, the CA bundle, user wxtoken (10001); the root filesystem is staged
# in target/image-root. PODMAN="podman --storage-driver vfs" etc. passes podman options
# (docs/CONTAINERS.md).
image: portable
	sh packaging/container/build.sh "$(PORTABLE_BIN)"

check-bin:
	@test -x "$(BIN)" || { echo "$(BIN) not found: run 'make' (cargo build --release) first, or pass BIN=path" >&2; exit 1; }

check-docs:
	@for f in man/wxtoken.1 completions/wxtoken.bash completions/_wxtoken completions/wxtoken.fish; do \
		test -f "$(ASSETS)/$$f" || { echo "$(ASSETS)/$$f not found: run 'make' (or 'make docs') first, or pass ASSETS=dir" >&2; exit 1; }; \
	done

install: check-bin check-docs
	$(INSTALL) -Dpm0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/wxtoken"
	$(INSTALL) -d -m0755 "$(DESTDIR)$(UNITDIR)"
	for u in $(UNITS); do \
		$(SED) -e 's|/usr/bin/wxtoken|$(BINDIR)/wxtoken|g' \
			-e 's|file:/usr/share/doc/wxtoken/|file:$(DOCDIR)/|g' "systemd/$$u" >"$(DESTDIR)$(UNITDIR)/$$u.tmp" && \
		chmod 0644 "$(DESTDIR)$(UNITDIR)/$$u.tmp" && \
		mv -f "$(DESTDIR)$(UNITDIR)/$$u.tmp" "$(DESTDIR)$(UNITDIR)/$$u" || exit 1; \
	done
	$(INSTALL) -Dpm0644 systemd/wxtoken.sysusers "$(DESTDIR)$(SYSUSERSDIR)/wxtoken.conf"
	@# The example settings and the cron file name the package's paths (/usr/lib/wxtoken/hooks,
	@# /usr/bin/wxtoken), rewritten like the units'.
	$(INSTALL) -d -m0755 "$(DESTDIR)$(DOCDIR)"
	$(SED) -e '/WXTOKEN_ON_CHANGE=/s|/usr/lib/wxtoken/|$(LIBEXECDIR)/|g' packaging/wxtoken.conf >"$(DESTDIR)$(DOCDIR)/wxtoken.conf.example"
	$(SED) -e 's|/usr/bin/wxtoken|$(BINDIR)/wxtoken|g' packaging/cron.d/wxtoken >"$(DESTDIR)$(DOCDIR)/wxtoken.cron"
	chmod 0644 "$(DESTDIR)$(DOCDIR)/wxtoken.conf.example" "$(DESTDIR)$(DOCDIR)/wxtoken.cron"
	for d in $(DOCS); do $(INSTALL) -pm0644 "$$d" "$(DESTDIR)$(DOCDIR)/" || exit 1; done
	$(INSTALL) -d -m0755 "$(DESTDIR)$(CONFDIR)"
	@# Never overwrite an admin's settings.
	test -e "$(DESTDIR)$(CONFDIR)/wxtoken.conf" || \
		$(INSTALL) -pm0644 "$(DESTDIR)$(DOCDIR)/wxtoken.conf.example" "$(DESTDIR)$(CONFDIR)/wxtoken.conf"
	@# The --on-change hooks (where wxtoken.conf's example names them) and the readers.
	for h in contrib/hooks/*; do $(INSTALL) -Dpm0755 "$$h" "$(DESTDIR)$(HOOKDIR)/$${h##*/}" || exit 1; done
	$(INSTALL) -Dpm0644 contrib/php/wxtoken.php "$(DESTDIR)$(READERDIR)/php/wxtoken.php"
	$(INSTALL) -Dpm0644 contrib/python/wxtoken_reader.py "$(DESTDIR)$(READERDIR)/python/wxtoken_reader.py"
	for m in "$(ASSETS)"/man/wxtoken*.1; do \
		$(INSTALL) -Dpm0644 "$$m" "$(DESTDIR)$(MANDIR)/man1/$${m##*/}" || exit 1; \
	done
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/wxtoken.bash" "$(DESTDIR)$(BASHCOMPDIR)/wxtoken"
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/_wxtoken" "$(DESTDIR)$(ZSHCOMPDIR)/_wxtoken"
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/wxtoken.fish" "$(DESTDIR)$(FISHCOMPDIR)/wxtoken.fish"
ifeq ($(DESTDIR),)
	@# The wxtoken user, /var/lib/wxtoken and, on a host without systemd, /etc/cron.d/wxtoken:
	@# install.sh's host set-up (the tarball's installer), the same here.
	BINDIR="$(BINDIR)" SYSUSERSDIR="$(SYSUSERSDIR)" CONFDIR="$(CONFDIR)" sh packaging/install.sh --host-setup
endif

uninstall:
ifeq ($(DESTDIR),)
	-test -d /run/systemd/system && systemctl disable --now wxtoken.timer wxtoken.path 2>/dev/null
	-test -d /run/systemd/system && for t in /etc/systemd/system/timers.target.wants/wxtoken@*.timer \
		/etc/systemd/system/paths.target.wants/wxtoken@*.path; do \
		test -e "$$t" || test -L "$$t" || continue; systemctl disable --now "$${t##*/}"; done
endif
	rm -f "$(DESTDIR)$(BINDIR)/wxtoken"
	for u in $(UNITS); do rm -f "$(DESTDIR)$(UNITDIR)/$$u"; done
	rm -f "$(DESTDIR)$(SYSUSERSDIR)/wxtoken.conf"
	rm -f "$(DESTDIR)$(DOCDIR)/wxtoken.conf.example" "$(DESTDIR)$(DOCDIR)/wxtoken.cron"
	for h in contrib/hooks/*; do rm -f "$(DESTDIR)$(HOOKDIR)/$${h##*/}"; done
	-rmdir "$(DESTDIR)$(HOOKDIR)" "$(DESTDIR)$(LIBEXECDIR)" 2>/dev/null
	rm -f "$(DESTDIR)$(READERDIR)/php/wxtoken.php" "$(DESTDIR)$(READERDIR)/python/wxtoken_reader.py"
	-rmdir "$(DESTDIR)$(READERDIR)/php" "$(DESTDIR)$(READERDIR)/python" "$(DESTDIR)$(READERDIR)" 2>/dev/null
	for d in $(DOCS); do rm -f "$(DESTDIR)$(DOCDIR)/$$d"; done
	-rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null
	@# By name, not from $(ASSETS): uninstall works after `cargo clean` too.
	rm -f "$(DESTDIR)$(MANDIR)/man1/wxtoken.1" "$(DESTDIR)$(MANDIR)/man1/"wxtoken-*.1
	rm -f "$(DESTDIR)$(BASHCOMPDIR)/wxtoken" "$(DESTDIR)$(ZSHCOMPDIR)/_wxtoken" "$(DESTDIR)$(FISHCOMPDIR)/wxtoken.fish"
ifeq ($(DESTDIR),)
	rm -f /etc/cron.d/wxtoken
	-test -d /run/systemd/system && systemctl daemon-reload
	@echo "Kept: $(CONFDIR) (settings, secrets), /var/lib/wxtoken (tokens) and the wxtoken user."
	@echo "Remove them with: rm -r $(CONFDIR) /var/lib/wxtoken && userdel wxtoken"
endif

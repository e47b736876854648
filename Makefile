# Build and install wxtoken with its systemd units, man pages and shell completions.
#
#   make                      # cargo build --release, then the man pages and completions
#   sudo make install         # binary, units, sysusers entry, docs, completions under PREFIX
#   sudo make uninstall       # removes them again; keeps /etc/wxtoken and /var/lib/wxtoken
#   make deb                  # the Debian package (cargo deb), with the man pages and completions
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
# runs on this host; otherwise install also creates the wxtoken user (systemd-sysusers) and reloads
# systemd. The binary is taken from $(CARGO_TARGET_DIR)/release (override with BIN=path).

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

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN ?= $(CARGO_TARGET_DIR)/release/wxtoken
ASSETS ?= target/assets

UNITS := wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path
DOCS := $(wildcard README.md)

INSTALL ?= install
SED ?= sed

.PHONY: all build docs deb install uninstall check-bin check-docs

all: build docs

build:
	$(CARGO) build --release --locked

docs:
	$(CARGO) run --locked --quiet --example gen-docs -- "$(ASSETS)" >/dev/null

# cargo deb reads the generated files from target/assets (Cargo.toml), whatever ASSETS says.
deb:
	$(CARGO) run --locked --quiet --example gen-docs -- target/assets >/dev/null
	$(CARGO) deb --locked

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
	$(INSTALL) -Dpm0644 packaging/wxtoken.conf "$(DESTDIR)$(DOCDIR)/wxtoken.conf.example"
	for d in $(DOCS); do $(INSTALL) -pm0644 "$$d" "$(DESTDIR)$(DOCDIR)/" || exit 1; done
	$(INSTALL) -d -m0755 "$(DESTDIR)$(CONFDIR)"
	@# Never overwrite an admin's settings.
	test -e "$(DESTDIR)$(CONFDIR)/wxtoken.conf" || \
		$(INSTALL) -pm0644 packaging/wxtoken.conf "$(DESTDIR)$(CONFDIR)/wxtoken.conf"
	for m in "$(ASSETS)"/man/wxtoken*.1; do \
		$(INSTALL) -Dpm0644 "$$m" "$(DESTDIR)$(MANDIR)/man1/$${m##*/}" || exit 1; \
	done
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/wxtoken.bash" "$(DESTDIR)$(BASHCOMPDIR)/wxtoken"
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/_wxtoken" "$(DESTDIR)$(ZSHCOMPDIR)/_wxtoken"
	$(INSTALL) -Dpm0644 "$(ASSETS)/completions/wxtoken.fish" "$(DESTDIR)$(FISHCOMPDIR)/wxtoken.fish"
ifeq ($(DESTDIR),)
	-command -v systemd-sysusers >/dev/null && systemd-sysusers "$(SYSUSERSDIR)/wxtoken.conf"
	-test -d /run/systemd/system && systemctl daemon-reload
	@echo "Next: put WXTOKEN_APPID in $(CONFDIR)/wxtoken.conf, the secret in $(CONFDIR)/secret (0600),"
	@echo "      then: systemctl enable --now wxtoken.timer wxtoken.path"
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
	rm -f "$(DESTDIR)$(DOCDIR)/wxtoken.conf.example"
	for d in $(DOCS); do rm -f "$(DESTDIR)$(DOCDIR)/$$d"; done
	-rmdir "$(DESTDIR)$(DOCDIR)" 2>/dev/null
	@# By name, not from $(ASSETS): uninstall works after `cargo clean` too.
	rm -f "$(DESTDIR)$(MANDIR)/man1/wxtoken.1" "$(DESTDIR)$(MANDIR)/man1/"wxtoken-*.1
	rm -f "$(DESTDIR)$(BASHCOMPDIR)/wxtoken" "$(DESTDIR)$(ZSHCOMPDIR)/_wxtoken" "$(DESTDIR)$(FISHCOMPDIR)/wxtoken.fish"
ifeq ($(DESTDIR),)
	-test -d /run/systemd/system && systemctl daemon-reload
	@echo "Kept: $(CONFDIR) (settings, secrets), /var/lib/wxtoken (tokens) and the wxtoken user."
	@echo "Remove them with: rm -r $(CONFDIR) /var/lib/wxtoken && userdel wxtoken"
endif

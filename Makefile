# Build and install wxtoken with its systemd units.
#
#   make                      # cargo build --release
#   sudo make install         # binary, units, sysusers entry, example config under PREFIX
#   sudo make uninstall       # removes them again; keeps /etc/wxtoken and /var/lib/wxtoken
#
# PREFIX defaults to /usr/local (binary in /usr/local/bin, units in /usr/local/lib/systemd/system,
# the sysusers entry in /usr/local/lib/sysusers.d: systemd reads all three). The unit files in
# systemd/ name /usr/bin/wxtoken, the path of the Debian package (PREFIX=/usr); `make install`
# rewrites ExecStart= to $(BINDIR)/wxtoken so the installed units always run the installed binary.
# Configuration stays in /etc/wxtoken whatever the PREFIX (the units name it).
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
CONFDIR ?= /etc/wxtoken

CARGO ?= cargo
CARGO_TARGET_DIR ?= target
BIN ?= $(CARGO_TARGET_DIR)/release/wxtoken

UNITS := wxtoken.service wxtoken.timer wxtoken.path wxtoken@.service wxtoken@.timer wxtoken@.path
MANPAGES := $(wildcard man/*.1)
DOCS := $(wildcard README.md)

INSTALL ?= install
SED ?= sed

.PHONY: all build install uninstall check-bin

all: build

build:
	$(CARGO) build --release --locked

check-bin:
	@test -x "$(BIN)" || { echo "$(BIN) not found: run 'make' (cargo build --release) first, or pass BIN=path" >&2; exit 1; }

install: check-bin
	$(INSTALL) -Dpm0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/wxtoken"
	$(INSTALL) -d -m0755 "$(DESTDIR)$(UNITDIR)"
	for u in $(UNITS); do \
		$(SED) 's|/usr/bin/wxtoken|$(BINDIR)/wxtoken|g' "systemd/$$u" >"$(DESTDIR)$(UNITDIR)/$$u.tmp" && \
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
	for m in $(MANPAGES); do \
		$(INSTALL) -Dpm0644 "$$m" "$(DESTDIR)$(MANDIR)/man1/$${m##*/}" || exit 1; \
	done
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
	for m in $(MANPAGES); do rm -f "$(DESTDIR)$(MANDIR)/man1/$${m##*/}"; done
ifeq ($(DESTDIR),)
	-test -d /run/systemd/system && systemctl daemon-reload
	@echo "Kept: $(CONFDIR) (settings, secrets), /var/lib/wxtoken (tokens) and the wxtoken user."
	@echo "Remove them with: rm -r $(CONFDIR) /var/lib/wxtoken && userdel wxtoken"
endif

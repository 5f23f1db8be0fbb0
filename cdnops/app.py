"""Composition root: builds the parts from the config, owns the lifecycle and the signals.

`cdnops run --config FILE` lands here. The daemon enters its long-lived parts (HTTP
side, poller) in dependency order with an `AsyncExitStack`, runs the detection loop in
a `TaskGroup`, and on SIGTERM stops polling, lets in-flight polls finish within
`shutdown_grace_s`, saves the detection state and exits 0. SIGHUP re-reads the config
and the inventory off the event loop and swaps them in only if they are valid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry

from cdnops import __version__
from cdnops.api.auth import WriteAuth
from cdnops.api.metrics import DaemonMetrics
from cdnops.api.server import HttpServer
from cdnops.api.v1 import build_api
from cdnops.config.inventory import load_inventory
from cdnops.config.secrets import Secret
from cdnops.config.settings import Settings, load_settings
from cdnops.control import Control
from cdnops.detect.engine import DetectionEngine
from cdnops.errors import ConfigError, StoreError
from cdnops.incidents.events import EventBus
from cdnops.incidents.tracker import IncidentTracker
from cdnops.intake.alertmanager import AlertmanagerIntake
from cdnops.logfmt import setup_logging
from cdnops.model import DetectionResult, FleetFrame, Inventory
from cdnops.mqtt.commands import CommandHandler
from cdnops.mqtt.connection import Connection
from cdnops.mqtt.metrics import MqttMetrics
from cdnops.mqtt.outbox import DEFAULT_MAX_EVENTS, Outbox
from cdnops.mqtt.publisher import Publisher
from cdnops.mqtt.topics import Topics
from cdnops.poll.poller import Poller, PollerOptions
from cdnops.remediate.audit import RemediationBus
from cdnops.remediate.engine import Remediator
from cdnops.remediate.loader import PlaybookSet, load_playbooks
from cdnops.sdnotify import Notifier, watchdog_interval_s, watchdog_loop
from cdnops.store.db import Store

log = logging.getLogger("cdnops.app")

DETECT_STATE_FILE = "detect-state.npz"
STORE_FILE = "cdnops.db"
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class Loaded:
    """A config with everything it points at, validated together."""

    settings: Settings
    inventory: Inventory
    token: Secret
    playbooks: PlaybookSet = field(default_factory=PlaybookSet)
    write_token: Secret | None = None  # the API's (None: API writes are refused)
    mqtt: Connection | None = None  # None: no broker, events stay in the outbox


def load_all(config_path: Path) -> Loaded:
    """Load and validate config, inventory, token and playbooks; raises ConfigError with
    every issue."""
    settings = load_settings(config_path)
    inventory = load_inventory(settings.inventory, settings.poll.health_format)
    token = settings.appliance_token.resolve()
    playbooks = load_playbook_set(settings)
    mqtt = Connection.from_config(settings.mqtt, settings.instance) if settings.mqtt else None
    return Loaded(settings, inventory, token, playbooks, write_token(settings), mqtt)


def write_token(settings: Settings) -> Secret | None:
    """The API's write token, read now so that a missing one fails at start (or reload)."""
    source = settings.api.write_token
    if source is None or not settings.api.enabled:
        return None
    return source.resolve()  # located at load: its errors name the file, line and key


def load_playbook_set(settings: Settings) -> PlaybookSet:
    """The playbooks of `remediation.playbooks_dir`; none when it does not exist."""
    r = settings.remediation
    if not r.enabled or not r.playbooks_dir.exists():
        return PlaybookSet()
    known = (*settings.poll.metrics, *settings.incidents.families.values())
    return load_playbooks([r.playbooks_dir], metrics=known)


def poller_options(settings: Settings) -> PollerOptions:
    """Map the `poll:` section onto the poller's options."""
    p = settings.poll
    return PollerOptions(
        interval_s=p.interval_s,
        timeout_s=p.timeout_s,
        connect_timeout_s=p.connect_timeout_s,
        concurrency=p.concurrency,
        max_body_bytes=p.max_body_bytes,
        metrics=tuple(p.metrics),
        confirm_retries=p.confirm_retries,
        retry_delay_s=p.retry_delay_s,
    )


# Settings that a SIGHUP cannot change on a running daemon (the rest is swapped live).
RESTART_ONLY = (
    "instance", "state_dir", "poll", "http", "detect", "shutdown_grace_s", "remediation",
    "mqtt",
)  # fmt: skip
# Playbooks themselves are swapped live (a bad set is rejected, the last good one kept).
# `incidents` is swapped live, except its triage pool and history size (see docs/incidents.md).


class Daemon:
    """One running cdnops: poller -> detection, with the HTTP side beside them."""

    def __init__(self, config_path: Path, loaded: Loaded) -> None:
        self.config_path = config_path
        self.loaded = loaded
        self.registry = CollectorRegistry()
        self.metrics = DaemonMetrics(
            self.registry, instance=loaded.settings.instance, version=__version__
        )
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._latest_result: DetectionResult | None = None
        self._poller: Poller | None = None
        self._tracker: IncidentTracker | None = None
        self._remediator: Remediator | None = None
        self._control: Control | None = None
        self._intake: AlertmanagerIntake | None = None
        self.auth = WriteAuth(loaded.write_token)
        self._ticked = asyncio.Condition()
        self.ticks = 0
        self.http_port: int | None = None
        self.ready = asyncio.Event()
        self.notifier = Notifier.from_env()

    def request_stop(self) -> None:
        """Ask the daemon to shut down gracefully (what SIGTERM does)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the daemon to re-read its config and inventory (what SIGHUP does)."""
        self._reload.set()

    @property
    def tracker(self) -> IncidentTracker:
        """The incident tracker (once running)."""
        if self._tracker is None:
            raise RuntimeError("the daemon is not running")
        return self._tracker

    @property
    def control(self) -> Control:
        """The operator's operations (once running): what /api/v1 and MQTT commands call."""
        if self._control is None:
            raise RuntimeError("the daemon is not running")
        return self._control

    @property
    def remediator(self) -> Remediator:
        """The remediator (once running, with remediation enabled)."""
        if self._remediator is None:
            raise RuntimeError("the daemon is not running or remediation is disabled")
        return self._remediator

    async def wait_ticks(self, n: int) -> int:
        """Wait until `n` more ticks went through detection and incidents; returns the count."""
        async with self._ticked:
            target = self.ticks + n
            await self._ticked.wait_for(lambda: self.ticks >= target)
            return self.ticks

    def _latest(self) -> tuple[FleetFrame | None, DetectionResult | None]:
        frame = self._poller.latest if self._poller else None
        return frame, self._latest_result

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        settings = self.loaded.settings
        engine = await asyncio.to_thread(self._restore_engine)
        async with AsyncExitStack() as stack:
            # the store's connection belongs to the loop's thread; opening it is quick
            store = stack.enter_context(self._open_store())
            incident_bus, remediation_bus = EventBus(self.registry), RemediationBus(self.registry)
            # closed last, after the remediator and the publisher: keeps their last words
            outbox = self._outbox(store)
            outbox.attach(incident_bus, remediation_bus)
            stack.callback(outbox.close)
            self._tracker = stack.enter_context(
                IncidentTracker(settings.incidents, store, incident_bus)
            )
            control = self._control = self._make_control(store, self._tracker)
            # entered before the remediator so it stops after it: the last events go out
            await self._enter_publisher(stack, outbox, control)
            self._remediator = await self._enter_remediator(stack, store, control, remediation_bus)
            control.remediator = self._remediator
            http = await stack.enter_async_context(
                HttpServer(
                    host=settings.http.listen,
                    port=settings.http.port,
                    registry=self.registry,
                    per_appliance=settings.http.per_appliance_metrics,
                    latest=self._latest,
                    api=build_api(control, self.auth) if settings.api.enabled else None,
                )
            )
            self.http_port = http.port
            log.info("http listening on http://%s:%d", settings.http.listen, http.port)
            poller = await stack.enter_async_context(
                Poller(self.loaded.inventory, poller_options(settings), observer=self.metrics)
            )
            self._poller = poller
            log.info(
                "polling %d appliances in %d sites every %gs",
                len(self.loaded.inventory.appliances),
                len(self.loaded.inventory.sites),
                settings.poll.interval_s,
            )
            async with asyncio.TaskGroup() as tg:
                detect_task = tg.create_task(
                    self._detect_loop(poller, engine, http), name="cdnops.detect"
                )
                reload_task = tg.create_task(self._reload_loop(poller), name="cdnops.reload")
                prune_task = tg.create_task(self._prune_loop(store), name="cdnops.prune")
                if (watchdog_s := watchdog_interval_s()) is not None:
                    watchdog_task = tg.create_task(
                        watchdog_loop(self.notifier, watchdog_s), name="cdnops.watchdog"
                    )
                self.ready.set()
                self.notifier.ready(self._summary())
                await self._stop.wait()
                self.notifier.stopping()
                log.info(
                    "stopping: letting in-flight polls finish (grace %gs)",
                    settings.shutdown_grace_s,
                )
                await asyncio.gather(
                    poller.stop(settings.shutdown_grace_s), self._stop_remediation()
                )
                reload_task.cancel()
                prune_task.cancel()
                if watchdog_s is not None:
                    watchdog_task.cancel()
                detect_task.cancel()
        await asyncio.to_thread(self._save_engine, engine)
        log.info("stopped cleanly")
        return 0

    async def _detect_loop(self, poller: Poller, engine: DetectionEngine, http: HttpServer) -> None:
        """Forever: take each tick's frame, update detection, publish the result.

        Detection is one vectorized pass per tick, cheap enough to run on the loop;
        an exception in it is logged and the tick skipped, so polling never stops.
        """
        while True:
            frame = await poller.frames.get()
            try:
                result = engine.update(frame)
            except Exception:
                log.exception("detection failed on tick %d; skipping it", frame.seq)
                continue
            self._latest_result = result
            self.metrics.detection_done(result)
            self._track(frame, result)
            self._remediate(frame)
            async with self._ticked:
                self.ticks += 1
                self._ticked.notify_all()
            http.set_ready()
            if self.notifier.enabled:  # the summary walks the inventory: only under systemd
                self.notifier.status(self._summary())

    def _track(self, frame: FleetFrame, result: DetectionResult) -> None:
        """Feed the incident tracker; a failure there must not stop detection or polling."""
        if self._tracker is None:
            return
        try:
            self._tracker.update(frame, result)
            if self._intake is not None:
                self._intake.expire()  # alert incidents Alertmanager stopped repeating
        except Exception:
            log.exception("incident tracking failed on tick %d; skipping it", frame.seq)

    def _remediate(self, frame: FleetFrame) -> None:
        """Feed the remediator after the tracker; a failure there must not stop the tick."""
        if self._remediator is None or self._tracker is None:
            return
        try:
            self._remediator.tick(frame, self._tracker.open_incidents(), self._tracker.releasable())
        except Exception:
            log.exception("remediation failed on tick %d; skipping it", frame.seq)

    def _make_control(self, store: Store, tracker: IncidentTracker) -> Control:
        """The operations behind /api/v1, with the run-time silences put back."""
        api = self.loaded.settings.api
        # Built even when the intake is disabled: it files the alert incidents the store holds.
        self._intake = AlertmanagerIntake(api.alertmanager, tracker, store)
        control = Control(
            tracker,
            store,
            latest=self._latest,
            load_playbooks=lambda: load_playbook_set(self.loaded.settings),
            intake=self._intake if api.enabled and api.alertmanager.enabled else None,
        )
        control.restore_silences()
        if api.enabled and self.loaded.write_token is None:
            log.warning("api: no api.write_token configured, so every write to /api/v1 is refused")
        return control

    def _outbox(self, store: Store) -> Outbox:
        settings = self.loaded.settings
        mqtt = settings.mqtt
        return Outbox(
            store,
            Topics(mqtt.prefix(settings.instance) if mqtt else f"cdnops/{settings.instance}"),
            settings.instance,
            max_events=mqtt.outbox_max_events if mqtt else DEFAULT_MAX_EVENTS,
            # exported only with a broker: without one a full outbox is the expected state
            metrics=MqttMetrics(self.registry if mqtt else None),
        )

    async def _enter_publisher(
        self, stack: AsyncExitStack, outbox: Outbox, control: Control
    ) -> None:
        connection, mqtt = self.loaded.mqtt, self.loaded.settings.mqtt
        if connection is None or mqtt is None:
            log.info("mqtt: no broker configured; events are kept in the store's outbox")
            return
        handler = CommandHandler(control, outbox.topics) if mqtt.commands_enabled else None
        await stack.enter_async_context(
            Publisher(connection, outbox, metrics=outbox.metrics, on_message=handler)
        )
        log.info(
            "mqtt: publishing to %s under %s/ (commands %s)",
            connection.describe(),
            outbox.topics.prefix,
            "on" if handler else "off",
        )

    async def _enter_remediator(
        self, stack: AsyncExitStack, store: Store, control: Control, bus: RemediationBus
    ) -> Remediator | None:
        config = self.loaded.settings.remediation
        if not config.enabled:
            return None
        remediator = Remediator(
            config,
            self.loaded.playbooks,
            store,
            bus,
            token=self.loaded.token,
            silence=control.add_silence,  # stored, so the silence outlives a restart
            silences=control.tracker.silences,
        )
        if not config.playbooks_dir.exists():
            log.warning(
                "remediation: %s does not exist, so no playbook will run", config.playbooks_dir
            )
        log.info(
            "remediation: %d playbooks from %s%s",
            len(self.loaded.playbooks),
            config.playbooks_dir,
            " (dry run)" if config.dry_run else "",
        )
        return await stack.enter_async_context(remediator)

    async def _stop_remediation(self) -> None:
        if self._remediator is not None:
            await self._remediator.shutdown(self.loaded.settings.shutdown_grace_s)

    async def _prune_loop(self, store: Store) -> None:
        """Every PRUNE_EVERY_S, forget what ended more than `retention_days` ago.

        Run on the loop's thread (the store's connection lives there); an hour's worth of
        ended incidents and executions is a small delete.
        """
        while True:
            days = self.loaded.settings.retention_days
            try:
                removed = store.prune(time.time() - days * 86400.0)
            except StoreError as exc:
                log.error("could not prune the store: %s", exc)
            else:
                if any(removed.values()):
                    counts = ", ".join(f"{n} {what}" for what, n in removed.items() if n)
                    log.info("pruned what ended over %g days ago: %s", days, counts)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def _reload_loop(self, poller: Poller) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            self.notifier.reloading()
            try:
                await self._reload_once(poller)
            finally:
                self.notifier.ready(self._summary())

    async def _reload_once(self, poller: Poller) -> None:
        """Validate the new config off to the side; swap only if it is valid."""
        try:
            new = await asyncio.to_thread(load_all, self.config_path)
        except ConfigError as exc:
            self.metrics.config_reloaded(ok=False)
            log.error(
                "reload rejected, keeping the running config (%d issues):\n%s",
                len(exc.issues),
                exc,
            )
            return
        old = self.loaded
        fixed = [k for k in RESTART_ONLY if getattr(old.settings, k) != getattr(new.settings, k)]
        if fixed:
            log.warning("reload: changes to %s take effect at the next restart", ", ".join(fixed))
        old_ids = {a.id for a in old.inventory.appliances}
        new_ids = {a.id for a in new.inventory.appliances}
        poller.replace_inventory(new.inventory)
        if self._tracker is not None:
            self._tracker.reload(new.settings.incidents)
        if self._remediator is not None:
            self._remediator.replace_playbooks(new.playbooks)
        if self._intake is not None:
            self._intake.reload(new.settings.api.alertmanager)
        api = old.settings.api.model_copy(update={"alertmanager": new.settings.api.alertmanager})
        kept = old.settings.model_copy(update={"incidents": new.settings.incidents, "api": api})
        self.auth.set_token(new.write_token)
        self.loaded = Loaded(
            kept, new.inventory, new.token, new.playbooks, new.write_token, old.mqtt
        )
        setup_logging(new.settings.logging.level, new.settings.logging.format)
        self.metrics.config_reloaded(ok=True)
        log.info(
            "reloaded: %d appliances (+%d added, -%d removed)",
            len(new_ids),
            len(new_ids - old_ids),
            len(old_ids - new_ids),
        )

    def _summary(self) -> str:
        inv = self.loaded.inventory
        return f"{self.ticks} ticks, {len(inv.appliances)} appliances in {len(inv.sites)} sites"

    def _open_store(self) -> Store:
        state_dir = self.loaded.settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        return Store(state_dir / STORE_FILE)

    def _state_path(self) -> Path:
        return self.loaded.settings.state_dir / DETECT_STATE_FILE

    def _restore_engine(self) -> DetectionEngine:
        s = self.loaded.settings
        path = self._state_path()
        if path.exists():
            return DetectionEngine.load(path, s.detect, tuple(s.poll.metrics))
        return DetectionEngine(s.detect, tuple(s.poll.metrics))

    def _save_engine(self, engine: DetectionEngine) -> None:
        path = self._state_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            engine.save(path)
        except OSError as exc:
            log.error("could not save detection state to %s: %s", path, exc)


async def serve(config_path: Path, loaded: Loaded) -> int:
    """Run a daemon with SIGTERM/SIGINT and SIGHUP wired to it."""
    daemon = Daemon(config_path, loaded)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, daemon.request_stop)
    loop.add_signal_handler(signal.SIGINT, daemon.request_stop)
    loop.add_signal_handler(signal.SIGHUP, daemon.request_reload)
    try:
        return await daemon.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `cdnops run`."""
    parser.add_argument("--config", "-c", type=Path, required=True, help="the config file (YAML)")


def run(args: argparse.Namespace) -> int:
    """`cdnops run`: exit 2 on an invalid config, 0 after a graceful stop."""
    config_path: Path = args.config
    try:
        loaded = load_all(config_path)
    except ConfigError as exc:
        print(f"cdnops: invalid configuration ({len(exc.issues)} issues):", file=sys.stderr)
        print(exc, file=sys.stderr)
        return 2
    setup_logging(loaded.settings.logging.level, loaded.settings.logging.format)
    started = time.monotonic()
    try:
        code = asyncio.run(serve(config_path, loaded))
    except (StoreError, OSError) as exc:
        log.error("cannot run: %s", exc)
        return 1
    log.info("exit %d after %.0fs", code, time.monotonic() - started)
    return code

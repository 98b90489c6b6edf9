"""Switching the served model, in every uvicorn worker of the service together.

A request reads ``holder.current`` once and uses that immutable ``LoadedModel`` to the end, so a
switch meanwhile never mixes two models in one reply.

A reload is a two-phase change over the workers' shared folder (``worker_group.py``):

1. The worker that receives ``POST /admin/reload`` (the leader) takes the group's reload lock
   (409 while another reload runs, in any worker), loads the model and smoke-tests it. A model
   that fails stops here: 422, nothing changed anywhere.
2. It proposes generation n (the URI and the registry version it resolved); every other worker
   loads and smoke-tests that same version beside its serving model and reports prepared or
   failed. One failure aborts: every worker drops its candidate and keeps the old model (422,
   naming the worker and its reason).
3. Once all prepared, the leader commits n; each worker swaps to its prepared model (an
   attribute write) and reports it; the leader swaps too and answers 200 once every worker
   serves n, so every request sent after the 200 gets the new model, whichever worker takes it.
   Between the commit and the 200 the workers switch within one poll (``POLL_S``) of each other.

A worker that starts later (uvicorn replaces one that died) serves the committed generation. The
reload timeout bounds the whole change: past it, a change not yet committed is aborted (504).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ml_cicd.errors import ModelLoadError
from ml_cicd.serving import LoadedModel
from ml_cicd.worker_group import Phase, Proposal, SharedState, Target, WorkerGroup

logger = logging.getLogger(__name__)

# How often a worker looks at the shared state, and the leader at the workers' reports.
POLL_S = 0.05

Loader = Callable[..., LoadedModel]  # (uri, tracking_uri, version) -> a smoke-tested model
OnSwitch = Callable[[LoadedModel | None, LoadedModel], None]


class ModelHolder:
    """The serving model behind one reference: ``current`` is one attribute read, a switch one
    attribute write of an immutable LoadedModel."""

    def __init__(self) -> None:
        self._current: LoadedModel | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    @property
    def generation(self) -> int:
        return self._current.generation if self._current is not None else -1

    def install(self, model: LoadedModel, generation: int) -> LoadedModel | None:
        """Serve ``model`` as ``generation`` from now on; returns the model it replaced, whose
        downloaded files are removed (requests still using it hold the loaded object)."""
        previous, self._current = self._current, replace(model, generation=generation)
        if previous is not None and previous.download_dir != model.download_dir:
            previous.discard_files()
        return previous

    def release(self) -> None:
        """Stop serving (shutdown): drop the model and its downloaded files."""
        previous, self._current = self._current, None
        if previous is not None:
            previous.discard_files()


@dataclass
class ReloadTicket:
    """One reload led by this worker; it holds the group's reload lock until ``lead`` ends."""

    uri: str
    deadline: float  # time.monotonic()
    abandoned: bool = False
    committed: bool = False


@dataclass(frozen=True)
class ReloadResult:
    status: int  # the HTTP status of the reply: 200, 422 or 504
    reason: str | None
    model: LoadedModel | None  # the model this worker serves after the reload

    @property
    def switched(self) -> bool:
        return self.status == 200


@dataclass
class _Candidate:
    generation: int
    model: LoadedModel = field(repr=False)


class Reloader:
    def __init__(
        self,
        holder: ModelHolder,
        group: WorkerGroup,
        loader: Loader,
        tracking_uri: str | None,
        on_switch: OnSwitch,
    ) -> None:
        self.holder = holder
        self.group = group
        self._loader = loader
        self._tracking_uri = tracking_uri
        self._on_switch = on_switch
        self._candidate: _Candidate | None = None  # a peer's proposal, prepared here
        # Makes "commit unless abandoned" and "abandon unless committed" exclusive.
        self._commit_lock = threading.Lock()

    # --- every worker ---

    def start(self, configured_uri: str) -> LoadedModel:
        """Load what the group serves (the committed generation), else ``configured_uri``."""
        committed = self.group.read_state().committed
        if committed is not None:
            model = self._load(committed)
            return self._install(model, committed.generation, prepared=None)
        return self._install(self._loader(configured_uri, self._tracking_uri), 0, prepared=None)

    def follow(self) -> None:
        """Act on the shared state once: swap to a committed generation, prepare a proposed one,
        drop an aborted one. Blocking (loads run here): call it from the reload thread."""
        state = self.group.read_state()
        committed, proposal = state.committed, state.proposal
        if committed is not None and committed.generation > self.holder.generation:
            self._switch_to(committed)
        elif (
            proposal is not None
            and proposal.phase == "prepare"
            and proposal.leader != self.group.pid
            and proposal.generation > self.holder.generation
            and (self._candidate is None or self._candidate.generation != proposal.generation)
        ):
            self._prepare(proposal)
        elif proposal is not None and proposal.phase == "abort":
            self._drop_candidate(proposal.generation)

    def workers(self) -> list[dict[str, Any]]:
        """What each live worker serves: its report, or this worker alone without a group."""
        reports = [r["serving"] | {"pid": r["pid"]} for r in self.group.reports() if r["serving"]]
        if not self.group.shared and self.holder.current is not None:
            reports = [self.holder.current.info() | {"pid": self.group.pid}]
        return reports

    def stop(self) -> None:
        self.group.withdraw()
        self._drop_candidate(None)
        self.holder.release()

    # --- the leader ---

    def begin(self, uri: str, timeout_s: float) -> ReloadTicket | None:
        """A ticket for one reload, or None while another reload runs. Never blocks."""
        if not self.group.try_lock():
            return None
        return ReloadTicket(uri, time.monotonic() + timeout_s)

    def lead(self, ticket: ReloadTicket) -> ReloadResult:
        """Load, propose, commit when every worker prepared (module docstring). Blocking: run it
        in the reload thread. Releases the reload lock."""
        try:
            try:
                candidate = self._loader(ticket.uri, self._tracking_uri)
            except ModelLoadError as error:
                logger.warning("reload refused, the old model keeps serving: %s", error)
                return ReloadResult(422, str(error), self.holder.current)
            target = Target(
                max(self.group.read_state().latest_generation, self.holder.generation) + 1,
                ticket.uri,
                candidate.version,
            )
            refused = self._prepare_peers(ticket, target)
            with self._commit_lock:
                if refused is None and not ticket.abandoned:
                    self._publish(target, "commit", committed=target)
                    self._install(candidate, target.generation, prepared=None)
                    ticket.committed = True
            if not ticket.committed:
                self._publish(target, "abort")
                candidate.discard_files()
                reason = refused or "the reload was abandoned (timed out)"
                return ReloadResult(504 if refused is None else 422, reason, self.holder.current)
            return self._confirm(ticket, target)
        finally:
            self.group.unlock()

    def abandon(self, ticket: ReloadTicket) -> bool:
        """Give up waiting for a reload: it will not commit any more. True when it already did."""
        with self._commit_lock:
            ticket.abandoned = True
            return ticket.committed

    def _prepare_peers(self, ticket: ReloadTicket, target: Target) -> str | None:
        """Propose ``target`` and wait until every other live worker prepared it: None when all
        did, else why not (a worker's load failed, or the time ran out)."""
        if not self.group.peer_reports():
            return None
        self._publish(target, "prepare")
        while not ticket.abandoned and time.monotonic() < ticket.deadline:
            pending, failed = [], []
            for report in self.group.peer_reports():
                prepared = report.get("prepared") or {}
                if prepared.get("generation") != target.generation:
                    pending.append(report["pid"])
                elif not prepared.get("ok"):
                    failed.append(f"worker {report['pid']}: {prepared.get('reason')}")
            if failed:
                return f"not every worker could load {target.uri}, so none switched: " + "; ".join(
                    failed
                )
            if not pending:
                return None
            time.sleep(POLL_S)
        return None if ticket.abandoned else f"workers did not prepare {target.uri} in time"

    def _confirm(self, ticket: ReloadTicket, target: Target) -> ReloadResult:
        """After the commit: wait until every live worker serves ``target``."""
        while True:
            behind = [
                r["pid"]
                for r in self.group.peer_reports()
                if (r.get("serving") or {}).get("generation", -1) < target.generation
            ]
            if not behind:
                logger.info("every worker serves %s (generation %d)", target.uri, target.generation)
                return ReloadResult(200, None, self.holder.current)
            if time.monotonic() >= ticket.deadline:
                reason = (
                    f"the switch to {target.uri} is committed, but workers {behind} had not "
                    "confirmed it in time"
                )
                return ReloadResult(504, reason, self.holder.current)
            time.sleep(POLL_S)

    def _publish(self, target: Target, phase: Phase, committed: Target | None = None) -> None:
        proposal = Proposal(target.generation, target.uri, target.version, self.group.pid, phase)
        state = self.group.read_state()
        self.group.write_state(SharedState(committed or state.committed, proposal))

    # --- a peer's steps ---

    def _prepare(self, proposal: Proposal) -> None:
        self._drop_candidate(None)
        try:
            model = self._load(proposal)
        except ModelLoadError as error:
            logger.warning("cannot prepare generation %d: %s", proposal.generation, error)
            self._report(prepared={"generation": proposal.generation, "ok": False,
                                   "reason": str(error)})  # fmt: skip
            return
        self._candidate = _Candidate(proposal.generation, model)
        self._report(prepared={"generation": proposal.generation, "ok": True, "reason": None})

    def _switch_to(self, committed: Target) -> None:
        candidate = self._candidate
        if candidate is not None and candidate.generation == committed.generation:
            model = candidate.model
        else:  # this worker started after the proposal: load it now
            try:
                model = self._load(committed)
            except ModelLoadError as error:
                logger.error("cannot serve generation %d: %s", committed.generation, error)
                return
        self._candidate = None
        self._install(model, committed.generation, prepared=None)

    def _drop_candidate(self, generation: int | None) -> None:
        candidate = self._candidate
        if candidate is not None and generation in (None, candidate.generation):
            self._candidate = None
            candidate.model.discard_files()

    def _load(self, target: Target) -> LoadedModel:
        return self._loader(target.uri, self._tracking_uri, target.version)

    def _install(
        self, model: LoadedModel, generation: int, prepared: dict[str, Any] | None
    ) -> LoadedModel:
        previous = self.holder.install(model, generation)
        current = self.holder.current
        assert current is not None
        self._on_switch(previous, current)
        self._report(prepared=prepared)
        logger.info("serving %s (version %s, generation %d)", model.uri, model.version, generation)
        return current

    def _report(self, prepared: dict[str, Any] | None) -> None:
        current = self.holder.current
        self.group.report(current.info() if current is not None else None, prepared)

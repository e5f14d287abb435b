"""The background work of a swarm (a Huey task, app.jobs): plan, run the members, synthesize; and recovery.

1. Plan: a coordinator whose model can plan splits the goal into one subtask per member (a JSON array);
   without one, with the local extractive model (which cannot plan), or when its plan is unusable,
   every member gets the goal itself.
2. Rounds: each member's work is a real turn of that agent (app.services.turns) in its own conversation,
   at most `max_parallel` at once. A member that fails is recorded with its reason; the others go on.
   In a later round every member sees the previous round's results and improves its own.
3. Synthesis: the coordinator answers the goal citing the members' results as [1], [2]...; without a
   coordinator (or when it cannot write one) a deterministic merge of the answers. Either way it names
   the members that failed or were skipped.

Between steps, and every POLL_SECONDS while members run, the worker reads the cancel flag and the spent
cost: a cancelled swarm starts nothing more; a spent budget starts no further member or round. The swarm
beats a heartbeat (app.services.liveness) and holds a lease; a swarm whose worker died is failed with
its reason by `recover_interrupted_swarms` (on worker start and by the periodic tick), never left running.
"""
from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, update

from app.common.queue import enqueue
from app.errors import MagnetError
from app.extensions import db
from app.models import Swarm, SwarmMember, utcnow
from app.runtime.agent import CITATION
from app.services import agents, conversations, turns
from app.services.leases import Lease, abandoned_lease
from app.services.liveness import RunHeartbeat, stale_before
from app.services.swarms import members_of

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
INTERRUPTED = ("Interrupted (worker lost): the process running this swarm stopped before it ended. "
               "Members that had finished keep their results; start a new swarm to finish the work.")
ENDED = ("completed", "failed", "skipped", "cancelled")


@dataclass
class _Outcome:
    status: str
    result: str | None = None
    error: dict | None = None
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


# -- the task ------------------------------------------------------------------------------------------------


def run_swarm(swarm_id: str) -> None:
    """Claim and run a queued swarm; a duplicate delivery (or a swarm cancelled meanwhile) does nothing."""
    lease = Lease("swarm", swarm_id)
    if not lease.acquire():
        return
    try:
        claimed = db.session.execute(
            update(Swarm).where(Swarm.id == swarm_id, Swarm.status == "queued")
            .values(status="running", heartbeat_at=utcnow(), started_at=utcnow())).rowcount
        db.session.commit()
        if claimed:
            with RunHeartbeat(Swarm, swarm_id) as heartbeat:
                _execute(db.session.get(Swarm, swarm_id), heartbeat.lost)
    finally:
        lease.release()


def _execute(swarm: Swarm, lost: threading.Event) -> None:
    try:
        notes: list[str] = []
        subtasks = _plan(swarm, notes)
        stop = None
        for round_number in range(1, swarm.max_rounds + 1):
            members = _round_members(swarm, round_number, subtasks)
            stop = _run_round(swarm, members, lost)
            swarm.rounds_done = round_number
            db.session.commit()
            if stop:
                break
        # The last round's final turns may have spent the budget, or a cancel come meanwhile.
        stop = stop or _stop_reason(swarm, lost)
        if stop in ("cancelled", "worker_lost"):
            return  # already ended (cancelled) or taken over by the reaper (lost)
        _synthesize(swarm, notes, budget_spent=stop == "budget_exhausted")
        _end(swarm, "completed", stop, _closing_message(swarm, stop, notes))
    except Exception as exc:  # the swarm must end visibly, whatever happened
        log.exception("swarm %s failed", swarm.id)
        db.session.rollback()
        message = exc.message if isinstance(exc, MagnetError) else f"Internal error: {type(exc).__name__}"
        _end(db.session.get(Swarm, swarm.id), "failed", "error", message)


def _stop_reason(swarm: Swarm, lost: threading.Event) -> str | None:
    """Why nothing more should start now: cancelled, worker_lost, budget_exhausted; None to go on."""
    if lost.is_set():
        return "worker_lost"
    swarm.heartbeat_at = utcnow()
    db.session.commit()
    db.session.refresh(swarm)
    if swarm.cancel_requested or swarm.status == "cancelled":
        _end_cancelled(swarm)
        return "cancelled"
    if swarm.status != "running":
        return "worker_lost"
    if swarm.budget_usd is not None and swarm.cost >= swarm.budget_usd:
        return "budget_exhausted"
    return None


def _end(swarm: Swarm, status: str, stop_reason: str | None, message: str | None) -> None:
    """End a running swarm; conditional, so a swarm the reaper or a cancel ended keeps that ending."""
    db.session.execute(update(Swarm).where(Swarm.id == swarm.id, Swarm.status == "running").values(
        status=status, stop_reason=stop_reason, message=message, finished_at=utcnow()))
    db.session.commit()


def _end_cancelled(swarm: Swarm) -> None:
    """Cancel at once: members not started are cancelled; those running end on their own and are kept."""
    for member in members_of(swarm.id):
        if member.status == "pending":
            member.status, member.finished_at = "cancelled", utcnow()
            member.error = {"code": "cancelled", "message": "The swarm was cancelled before this member started."}
    db.session.commit()
    running = sum(1 for m in members_of(swarm.id) if m.status == "running")
    note = f" {running} member turn(s) already running will be recorded when they end." if running else ""
    _end(swarm, "cancelled", "cancelled", "Cancelled; no further member, round or synthesis was started." + note)


# -- plan ------------------------------------------------------------------------------------------------------


def _can_write(agent_id: str | None) -> bool:
    """The local extractive model only quotes passages: it cannot plan or write a synthesis."""
    if not agent_id:
        return False
    try:
        return turns.model_of(agents.get_agent(agent_id)).provider != "local"
    except MagnetError:  # deleted, or left without a model, since the swarm was created
        return False


def _plan(swarm: Swarm, notes: list[str]) -> list[str]:
    count = len(swarm.agents)
    goal_for_all = [swarm.goal] * count
    if not swarm.coordinator_agent_id:
        return goal_for_all
    if not _can_write(swarm.coordinator_agent_id):
        notes.append("The coordinator's model cannot plan, so every member worked on the goal itself.")
        return goal_for_all
    team = "\n".join(f"{n}. {a['name']}" for n, a in enumerate(swarm.agents, start=1))
    prompt = (f"You coordinate a team of {count} agents:\n{team}\n\nSplit the goal below into exactly {count} "
              f"subtasks, one per agent in this order. Answer with a JSON array of {count} strings and "
              f"nothing else.\n\nGoal: {swarm.goal}")
    outcome = _coordinator_turn(swarm, prompt)
    if outcome.status != "completed":
        notes.append(f"The coordinator could not plan ({outcome.error['message']}); every member worked on "
                     "the goal itself.")
        return goal_for_all
    subtasks = _parse_plan(outcome.result or "", count)
    if subtasks is None:
        notes.append("The coordinator's plan could not be read; every member worked on the goal itself.")
        return goal_for_all
    return subtasks


def _parse_plan(text: str, count: int) -> list[str] | None:
    """A JSON array of `count` non-empty strings, possibly inside other text; None otherwise."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        items = json.loads(text[start:end + 1])
    except ValueError:
        return None
    if not isinstance(items, list) or len(items) != count:
        return None
    if not all(isinstance(item, str) and item.strip() for item in items):
        return None
    return [item.strip() for item in items]


def _coordinator_turn(swarm: Swarm, prompt: str) -> _Outcome:
    outcome = _turn(swarm.coordinator_conversation_id, prompt, swarm.api_key_id)
    _add_cost(swarm, outcome)
    return outcome


# -- rounds ----------------------------------------------------------------------------------------------------


def _round_members(swarm: Swarm, round_number: int, subtasks: list[str]) -> list[SwarmMember]:
    """The round's member rows (round 1's were made with the swarm), each with its subtask."""
    existing = [m for m in members_of(swarm.id) if m.round == round_number]
    if not existing:
        for position, agent in enumerate(swarm.agents):
            db.session.add(SwarmMember(swarm_id=swarm.id, round=round_number, position=position,
                                       agent_id=agent["id"], agent_name=agent["name"],
                                       conversation_id=agent["conversation_id"], subtask=subtasks[position]))
    else:
        for member in existing:
            member.subtask = subtasks[member.position]
    db.session.commit()
    return [m for m in members_of(swarm.id) if m.round == round_number]


def _prompt(swarm: Swarm, member: SwarmMember) -> str:
    parts = [f"You are one of {len(swarm.agents)} agents working together on this goal: {swarm.goal}"]
    if member.subtask != swarm.goal:
        parts.append(f"Your part: {member.subtask}")
    if member.round > 1:
        earlier = [m for m in members_of(swarm.id) if m.round == member.round - 1 and m.result]
        listed = "\n\n".join(f"{m.agent_name}: {m.result}" for m in earlier)
        parts.append(f"Round {member.round} of {swarm.max_rounds}. The team's answers in the previous round:\n\n"
                     f"{listed}\n\nImprove your own answer with what the others found.")
    return "\n\n".join(parts)


def _run_round(swarm: Swarm, members: list[SwarmMember], lost: threading.Event) -> str | None:
    """Run the round's members, at most max_parallel at once; returns why it stopped early, or None."""
    app = current_app._get_current_object()
    waiting = [m for m in members if m.status == "pending"]
    running: dict[Future, str] = {}
    stop = None
    pool = ThreadPoolExecutor(swarm.max_parallel, thread_name_prefix=f"swarm-{swarm.id[-6:]}")
    try:
        while waiting or running:
            if stop is None:
                stop = _stop_reason(swarm, lost)
                if stop == "budget_exhausted":
                    _skip(waiting, "budget_exhausted", "The swarm's cost budget was spent before this member started.")
                if stop:
                    waiting = []
            while stop is None and waiting and len(running) < swarm.max_parallel:
                member = waiting.pop(0)
                member.status, member.started_at = "running", utcnow()
                db.session.commit()
                running[pool.submit(_in_app, app, member.conversation_id, _prompt(swarm, member),
                                    swarm.api_key_id)] = member.id
            if not running:
                break
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                _store(swarm, running.pop(future), future.result())
    finally:
        pool.shutdown(wait=True)
    return stop


def _skip(members: list[SwarmMember], code: str, message: str) -> None:
    for member in members:
        member.status, member.finished_at, member.error = "skipped", utcnow(), {"code": code, "message": message}
    db.session.commit()


def _in_app(app, conversation_id: str, prompt: str, api_key_id: str | None) -> _Outcome:
    with app.app_context():
        try:
            return _turn(conversation_id, prompt, api_key_id)
        finally:
            db.session.remove()


def _turn(conversation_id: str, prompt: str, api_key_id: str | None) -> _Outcome:
    """One real agent turn in the conversation, saved and metered like any other."""
    try:
        conversation = conversations.get_conversation(conversation_id)
        turn = turns.prepare(conversation, prompt, api_key_id=api_key_id)
        message, _ = turns.execute(turn, lambda event: None)
        return _outcome("completed", message)
    except turns.TurnFailed as failed:
        return _outcome("failed", failed.message, {"code": failed.error.code, "message": failed.error.message})
    except MagnetError as exc:  # refused before the turn ran (agent deleted or made inactive meanwhile)
        db.session.rollback()
        return _Outcome("failed", error={"code": exc.code, "message": exc.message})
    except Exception as exc:  # one member's bug must not end the swarm
        log.exception("swarm member turn in %s failed", conversation_id)
        db.session.rollback()
        return _Outcome("failed", error={"code": "internal_error", "message": f"{type(exc).__name__}"})


def _outcome(status: str, message: dict, error: dict | None = None) -> _Outcome:
    usage = message["usage"]
    return _Outcome(status, message["content"] if status == "completed" else None, error, usage["cost"],
                    usage["prompt_tokens"], usage["completion_tokens"])


def _store(swarm: Swarm, member_id: str, outcome: _Outcome) -> None:
    """Save a member's outcome, and its cost on the swarm (also after a cancel: the turn was paid for)."""
    member = db.session.get(SwarmMember, member_id)
    member.status, member.result, member.error = outcome.status, outcome.result, outcome.error
    member.cost, member.finished_at = outcome.cost, utcnow()
    member.prompt_tokens, member.completion_tokens = outcome.prompt_tokens, outcome.completion_tokens
    _add_cost(swarm, outcome)


def _add_cost(swarm: Swarm, outcome: _Outcome) -> None:
    # One UPDATE adding to the stored totals, so a cancel or reap written meanwhile is not overwritten.
    db.session.execute(update(Swarm).where(Swarm.id == swarm.id).values(
        cost=Swarm.cost + outcome.cost, prompt_tokens=Swarm.prompt_tokens + outcome.prompt_tokens,
        completion_tokens=Swarm.completion_tokens + outcome.completion_tokens))
    db.session.commit()
    db.session.refresh(swarm)


# -- synthesis ---------------------------------------------------------------------------------------------------


def _synthesize(swarm: Swarm, notes: list[str], *, budget_spent: bool) -> None:
    members = members_of(swarm.id)
    last_round = max((m.round for m in members if m.status != "pending"), default=1)
    final = [m for m in members if m.round == last_round]
    answered = [m for m in final if m.status == "completed" and m.result]
    citations = [{"index": n, "member_id": m.id, "agent_name": m.agent_name, "round": m.round, "cited": False}
                 for n, m in enumerate(answered, start=1)]
    problems = _problems(final)
    text, by = None, "merge"
    if answered and swarm.coordinator_agent_id and not budget_spent and _can_write(swarm.coordinator_agent_id):
        text = _coordinator_synthesis(swarm, answered, problems, notes)
        by = "coordinator" if text else "merge"
    if text is None:
        text = _merge(swarm, answered)
    cited = {int(n) for n in CITATION.findall(text)}
    for citation in citations:
        citation["cited"] = citation["index"] in cited if by == "coordinator" else True
    if problems:
        text += "\n\n" + "\n".join(problems)
    swarm.synthesis, swarm.synthesis_by, swarm.citations = text, by, citations
    db.session.commit()


def _problems(members: list[SwarmMember]) -> list[str]:
    """One line per member that failed or was skipped, with its reason: the synthesis always says so."""
    lines = []
    for member in members:
        if member.status in ("failed", "skipped", "cancelled"):
            reason = (member.error or {}).get("message") or member.status
            lines.append(f"Member {member.agent_name} {member.status} (round {member.round}): {reason}")
    return lines


def _numbered(members: list[SwarmMember]) -> str:
    return "\n\n".join(f"[{n}] {m.agent_name} ({m.subtask}):\n{m.result}" for n, m in enumerate(members, start=1))


def _coordinator_synthesis(swarm: Swarm, answered: list[SwarmMember], problems: list[str],
                           notes: list[str]) -> str | None:
    failed = ("\n\nThese members produced nothing:\n" + "\n".join(problems)) if problems else ""
    prompt = (f"Goal: {swarm.goal}\n\nYour team's results, numbered for citing:\n\n{_numbered(answered)}{failed}"
              "\n\nWrite the final answer to the goal from these results. Cite the results you use as [1], [2]...")
    outcome = _coordinator_turn(swarm, prompt)
    if outcome.status != "completed" or not (outcome.result or "").strip():
        reason = (outcome.error or {}).get("message", "it gave no answer")
        notes.append(f"The coordinator could not write the synthesis ({reason}); the answers were merged instead.")
        return None
    return outcome.result.strip()


def _merge(swarm: Swarm, answered: list[SwarmMember]) -> str:
    if not answered:
        return f"No member produced an answer to: {swarm.goal}"
    return f"Answers of {len(answered)} agents to: {swarm.goal}\n\n{_numbered(answered)}"


def _closing_message(swarm: Swarm, stop: str | None, notes: list[str]) -> str | None:
    parts = list(notes)
    if stop == "budget_exhausted":
        skipped = sum(1 for m in members_of(swarm.id) if m.status == "skipped")
        parts.insert(0, f"Budget exhausted: spent {swarm.cost:.6f} USD of {swarm.budget_usd:g}; {skipped} member "
                        "turn(s) were not started.")
    failed = sum(1 for m in members_of(swarm.id) if m.status == "failed")
    if failed:
        parts.append(f"{failed} member turn(s) failed; see their errors.")
    return " ".join(parts) or None


# -- recovery ---------------------------------------------------------------------------------------------------


def recover_interrupted_swarms(queued_before=None) -> list[str]:
    """Swarms whose worker died are failed with the reason (their members' turns cannot be resumed
    mid-answer); queued swarms (all, or those queued before a time) are delivered again. Returns the ids
    of the swarms failed."""
    running = db.session.execute(select(Swarm.id, Swarm.heartbeat_at).where(Swarm.status == "running")).all()
    db.session.commit()
    cutoff = stale_before()
    failed = []
    for swarm_id, heartbeat in running:
        with abandoned_lease("swarm", swarm_id) as abandoned:
            if (abandoned or heartbeat is None or heartbeat < cutoff) and _fail_lost(swarm_id):
                failed.append(swarm_id)
    query = select(Swarm.id).where(Swarm.status == "queued")
    if queued_before is not None:
        query = query.where(Swarm.created_at < queued_before)
    queued = db.session.execute(query).scalars().all()
    db.session.commit()
    for swarm_id in queued:
        enqueue("run_swarm", swarm_id)
    if failed:
        log.warning("failed %d swarms whose worker was lost: %s", len(failed), ", ".join(failed))
    return failed


def _fail_lost(swarm_id: str) -> bool:
    now = utcnow()
    changed = db.session.execute(update(Swarm).where(Swarm.id == swarm_id, Swarm.status == "running").values(
        status="failed", stop_reason="worker_lost", message=INTERRUPTED, finished_at=now)).rowcount
    if changed:
        lost = {"code": "worker_lost", "message": "The worker running this swarm was lost."}
        for member in members_of(swarm_id):
            if member.status in ("pending", "running"):
                member.status = "failed" if member.status == "running" else "skipped"
                member.error, member.finished_at = lost, now
    db.session.commit()
    return bool(changed)

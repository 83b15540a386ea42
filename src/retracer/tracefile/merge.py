"""One trace from the parts the processes of a run wrote (retracer.record.follow).

Each part is a complete signed trace of one process. :func:`merge_family`
reads them (their signatures are checked like any trace's), gives every
function one id across processes (the same code in two processes is one
function), numbers threads and captured calls anew, moves every child's times
onto the root's clock, and writes one trace with a ``processes`` table and the
profile per process (``proc_stats``, ``proc_edge_stats``) besides the totals.
"""
from __future__ import annotations

import json
import os
import re
import time
from array import array
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..errors import TraceError
from .reader import TraceReader
from .schema import Process
from .writer import TraceWriter

#: how long the root waits for a child that has begun writing its part
_WAIT_ENDING_S = 10.0


def _read_json(path: str) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    # a zombie (exited, not reaped yet) has ended
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def children(family: str) -> List[Dict[str, Any]]:
    """The children that started in the family directory, in order of start:
    their start record plus ``part`` (path or None), ``exit`` (status the parent saw)."""
    out = []
    try:
        names = os.listdir(family)
    except OSError:
        return out
    exits = {}
    for n in names:
        m = re.match(r"exit-(\d+)$", n)
        if m:
            e = _read_json(os.path.join(family, n))
            if isinstance(e, dict) and isinstance(e.get("status"), int):
                exits[int(m.group(1))] = e["status"]
    for n in names:
        if not n.endswith(".start"):
            continue
        base = os.path.join(family, n[:-len(".start")])
        rec = _read_json(base + ".start")
        if not isinstance(rec, dict) or not isinstance(rec.get("pid"), int):
            continue
        rec["base"] = base
        rec["exit"] = exits.get(rec["pid"])
        out.append(rec)
    out.sort(key=lambda r: (r.get("start_time") or 0, r["pid"]))
    return out


def _wait_for_parts(recs: List[Dict[str, Any]]) -> None:
    deadline = time.monotonic() + _WAIT_ENDING_S
    for r in recs:
        while (not os.path.exists(r["base"] + ".part") and os.path.exists(r["base"] + ".ending")
               and _alive(r["pid"]) and time.monotonic() < deadline):
            time.sleep(0.01)


def _fkey(f) -> tuple:
    module = "__main__" if f.module == "__mp_main__" else f.module
    return (f.kind, f.name, f.qualname, module, f.filename, f.firstlineno)


def merge_family(output: str, root_part: str, family: str, tmp_dir: Optional[str],
                 remap: Callable[[bytes, bytes, int], bytes]) -> Tuple[str, Dict[str, Any]]:
    """Write ``output`` from the root's part and its children's in ``family``.
    ``remap(chunk, fidmap, shift_ns)`` rewrites a call-stream chunk (the engine's).
    Returns (path, totals: calls_total, stream_calls, threads, processes, captured_calls)."""
    recs = children(family)
    _wait_for_parts(recs)
    root = TraceReader(root_part)
    readers: List[Tuple[Any, Dict[str, Any]]] = [(root, {})]
    for r in recs:
        part = r["base"] + ".part"
        rd: Any = None
        if os.path.exists(part):
            try:
                rd = TraceReader(part)
            except TraceError as e:
                r["note"] = f"its part could not be read ({e})"
        else:
            # it died before it wrote its part, or it is still running: what its spool
            # and journal hold so far
            from .recover import recover

            running = _still_running(r)
            rd = recover(r["base"], r, root.functions, _recovered_note(r, running),
                         ended="running" if running else "lost")
        readers.append((rd, r))
    try:
        return _write(output, root, readers, tmp_dir, remap)
    finally:
        for rd, _ in readers:
            if rd is not None:
                rd.close()


def _write(output: str, root: TraceReader, readers, tmp_dir, remap) -> Tuple[str, Dict[str, Any]]:
    root_start = root.meta.get("start_time") or 0.0
    fids: Dict[tuple, int] = {}
    flags: Dict[int, int] = {}
    functions: Dict[int, Any] = {}
    seen: Dict[tuple, int] = {}
    for fid, f in sorted(root.functions.items()):  # the root's ids stay
        k = _fkey(f)
        seen[k] = seen.get(k, 0) + 1
        fids[k + (seen[k],)] = fid  # two functions alike in one process stay two
        functions[fid] = f
        flags[fid] = f.flags
    next_fid = max(functions) + 1 if functions else 0
    maps: List[Optional[array]] = []
    for rd, _ in readers:
        if rd is None:
            maps.append(None)
            continue
        m = array("I", [0] * ((max(rd.functions) + 1) if rd.functions else 0))
        seen = {}
        for fid, f in sorted(rd.functions.items()):
            k = _fkey(f)
            seen[k] = seen.get(k, 0) + 1
            k = k + (seen[k],)
            if k not in fids:
                fids[k] = next_fid
                functions[next_fid] = f._replace(fid=next_fid, module="__main__" if f.module == "__mp_main__"
                                                 else f.module)
                flags[next_fid] = 0
                next_fid += 1
            g = fids[k]
            m[fid] = g
            flags[g] |= f.flags
        maps.append(m)

    meta = dict(root.meta)
    totals = {"calls_total": 0, "stream_calls": 0, "stream_events": 0, "threads": 0, "processes": 0}
    cap_meta = dict(meta.get("capture") or {}) if isinstance(meta.get("capture"), dict) else None
    paused: List[int] = []
    sources: Dict[str, str] = dict(meta.get("sources") or {})
    complete = True
    stream_cuts: List[Dict[str, Any]] = []  # the processes whose call stream reached --max-stream-bytes
    with TraceWriter(output, tmp_dir=tmp_dir) as w:
        w.add_functions(functions[f]._replace(flags=flags[f]) for f in sorted(functions))
        func_tot: Dict[int, List[int]] = {}
        edge_tot: Dict[Tuple[int, int], List[int]] = {}
        tidx = 0
        call_id = 0
        n_captured = 0
        procs = []
        for pidx, ((rd, rec), fmap) in enumerate(zip(readers, maps)):
            totals["processes"] += 1
            if rd is None:
                procs.append(_missing_process(pidx, rec, root_start))
                continue
            pm = rd.meta
            p0 = rd.processes[0]
            start = pm.get("start_time") or p0.start_time or root_start
            shift = max(0, int(round((start - root_start) * 1e9))) if pidx else 0
            info = json.loads(p0.info) if p0.info else {}
            info["calls_total"] = pm.get("calls_total") or 0
            if rec.get("forked"):
                info["forked"] = True
            if not pm.get("complete", True):
                complete = False
            if isinstance(pm.get("stream_cut"), dict):
                stream_cuts.append(pm["stream_cut"])
            exit_status = rec.get("exit") if rec.get("exit") is not None else p0.exit_status
            if pidx == 0:
                exit_status = p0.exit_status
            procs.append(Process(pidx, p0.pid, p0.ppid if p0.ppid is not None else rec.get("ppid"), p0.command,
                                 p0.start_time, p0.end_time, exit_status, p0.ended, shift, json.dumps(info)))
            tmap: Dict[int, int] = {}
            identity = pidx == 0
            for t in rd.threads:
                tmap[t.thread_idx] = tidx
                w.add_threads([(tidx, t.ident, t.native_id, t.name, t.n_events, pidx)])
                if identity:  # the root's own chunks, as its spool writer stored them
                    for seq, codec, n_ev, raw_size, data in rd.iter_stored_chunk_rows(t.thread_idx):
                        w.add_stored_chunk(tidx, seq, data, n_ev, raw_size, codec)
                else:
                    for seq, raw, n_ev in rd.iter_chunk_rows(t.thread_idx):
                        w.add_chunk(tidx, seq, remap(raw, fmap.tobytes(), shift), n_ev, codec="zlib")
                tidx += 1
            totals["threads"] += len(rd.threads)
            for key in ("calls_total", "stream_calls", "stream_events"):
                v = pm.get(key)
                totals[key] += v if isinstance(v, int) else 0
            rows = []
            for s in rd.func_stats():
                g = fmap[s.fid]
                rows.append((pidx, g, s.calls, s.prim_calls, s.own_ns, s.cum_ns))
                acc = func_tot.setdefault(g, [0, 0, 0, 0])
                for i, v in enumerate((s.calls, s.prim_calls, s.own_ns, s.cum_ns)):
                    acc[i] += v
            w.add_proc_stats(rows)
            rows = []
            for e in rd.edge_stats():
                caller = -1 if e.caller_fid == -1 else fmap[e.caller_fid]
                callee = fmap[e.callee_fid]
                rows.append((pidx, caller, callee, e.calls, e.prim_calls, e.own_ns, e.cum_ns))
                acc = edge_tot.setdefault((caller, callee), [0, 0, 0, 0])
                for i, v in enumerate((e.calls, e.prim_calls, e.own_ns, e.cum_ns)):
                    acc[i] += v
            w.add_proc_edge_stats(rows)
            # captured calls: values by key (the blobs are copied as stored)
            batch = []
            for c in rd.iter_captured(values=False):
                batch.append((call_id, fmap[c.fid], tmap.get(c.thread_idx, 0), c.call_no, c.t_start_ns + shift,
                              c.duration_ns, c.status, c.args, c.result, c.exception, c.args_after, c.info))
                call_id += 1
                if len(batch) >= 500:
                    w.add_captured(batch)
                    n_captured += len(batch)
                    batch = []
            if batch:
                w.add_captured(batch)
                n_captured += len(batch)
            w.add_blob_rows(rd.iter_blob_rows())
            cs = {}
            for s in rd.capture_stats():
                cs[fmap[s.fid]] = s
            if pidx == 0:
                cap_stats = {g: [s.kept, s.capture_ns, s.bytes, s.stopped] for g, s in cs.items()}
            else:
                for g, s in cs.items():
                    acc2 = cap_stats.setdefault(g, [0, 0, 0, None])
                    acc2[0] += s.kept
                    acc2[1] += s.capture_ns
                    acc2[2] += s.bytes
                    acc2[3] = acc2[3] or s.stopped
            pc = pm.get("capture") if isinstance(pm.get("capture"), dict) else {}
            pp = pc.get("paused_ns") if isinstance(pc.get("paused_ns"), list) else []
            paused += [int(x) if isinstance(x, int) else 0 for x in pp] + [0] * (len(rd.threads) - len(pp))
            if pidx and cap_meta is not None and pc:
                for key in ("capture_ns", "stored_bytes", "functions_stopped"):
                    if isinstance(pc.get(key), int):
                        cap_meta[key] = (cap_meta.get(key) or 0) + pc[key]
                cap_meta["cut"] = bool(cap_meta.get("cut")) or bool(pc.get("cut"))
                thr = pc.get("throttled")
                if isinstance(thr, dict) and isinstance(thr.get("calls"), int):
                    mine = cap_meta.get("throttled")
                    if isinstance(mine, dict) and isinstance(mine.get("calls"), int):
                        mine = dict(mine, calls=mine["calls"] + thr["calls"])
                    else:
                        mine = dict(thr)
                    cap_meta["throttled"] = mine
            if pidx and isinstance(pm.get("sources"), dict):
                for k, v in pm["sources"].items():
                    sources.setdefault(k, v)
        w.add_processes(procs)
        w.add_func_stats((f,) + tuple(v) for f, v in sorted(func_tot.items()))
        w.add_edge_stats(k + tuple(v) for k, v in sorted(edge_tot.items()))
        w.add_capture_stats((g,) + tuple(v) for g, v in sorted(cap_stats.items()))
        for key in ("calls_total", "stream_calls", "stream_events"):
            meta[key] = totals[key]
        meta["complete"] = bool(meta.get("complete", True)) and complete
        meta["processes"] = totals["processes"]
        # each process's stream has its own cap: the first that was cut, and how many were
        meta["stream_cut"] = totals["stream_cut"] = \
            dict(stream_cuts[0], processes=len(stream_cuts)) if stream_cuts else None
        if cap_meta is not None:
            cap_meta["paused_ns"] = paused
            meta["capture"] = cap_meta
        if "sources" in meta:
            meta["sources"] = sources
        meta["captured_calls"] = n_captured
        for k, v in meta.items():
            if k not in ("format", "schema_version"):
                w.set_meta(k, v)
        path = w.commit()
    totals["captured_calls"] = n_captured
    return path, totals


def _still_running(rec: Dict[str, Any]) -> bool:
    return rec.get("exit") is None and _alive(rec["pid"])


def _recovered_note(rec: Dict[str, Any], running: bool) -> str:
    if running:
        return ("it was still running when the root process ended: its calls up to about half a second "
                "before then are in the trace, read back from its call stream (none of its calls were captured)")
    status = rec.get("exit")
    how = (f"it was killed by signal {-status}" if isinstance(status, int) and status < 0
           else "it ended (crashed or killed)")
    return (f"{how} before it could write its part: its calls up to about half a second before its end "
            f"are in the trace, read back from its call stream (none of its calls were captured)")


def _missing_process(pidx: int, rec: Dict[str, Any], root_start: float) -> Process:
    """A child that left no part: still running, or it died before writing it."""
    pid = rec["pid"]
    status = rec.get("exit")
    running = status is None and _alive(pid)
    if rec.get("note"):
        note = rec["note"]
    elif running:
        note = "it was still running when the root process ended: its calls are not in the trace"
    elif isinstance(status, int) and status < 0:
        note = f"it was killed by signal {-status} before it could write its part: its calls are not in the trace"
    else:
        note = "it ended before it could write its part (crashed or killed): its calls are not in the trace"
    start = rec.get("start_time")
    shift = max(0, int(round(((start or root_start) - root_start) * 1e9)))
    cmd = rec.get("command")
    return Process(pidx, pid, rec.get("ppid") if isinstance(rec.get("ppid"), int) else None,
                   json.dumps(cmd) if isinstance(cmd, list) else None,
                   start if isinstance(start, (int, float)) else None, None, status,
                   "running" if running else "lost", shift,
                   json.dumps({"note": note, "forked": bool(rec.get("forked")), "calls_total": 0}))

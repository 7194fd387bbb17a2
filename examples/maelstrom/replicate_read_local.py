#!/usr/bin/env python3
"""Maelstrom lin-kv node that is NOT linearizable: local copies, blind gossip.

Every node keeps a full copy of the data in a dict.  A write or cas is
checked and applied on the local copy, sent to every other node as a one-way
`replicate` message (fire and forget: no acknowledgement, no retry, no
ordering), and acknowledged to the client at once.  Reads are served from
the local copy.  A partition (or a lost / delayed / reordered `replicate`)
leaves nodes with different values: stale reads, and two nodes may both
accept a cas from the same value.  It exists to be caught by the bench.
Python 3, standard library only.  Messages on stdout, logs on stderr.
"""
import json
import sys

FIELDS = {"read": ["key"], "write": ["key", "value"], "cas": ["key", "from", "to"]}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class Node:
    def __init__(self):
        self.node_id, self.node_ids = None, []
        self.next_msg_id = 0
        self.kv = {}

    def send(self, dest, body, src=None):
        """Write one message to stdout; `src` is only used before init."""
        self.next_msg_id += 1
        msg = {"src": self.node_id or src, "dest": dest,
               "body": dict(body, msg_id=self.next_msg_id)}
        sys.stdout.write(json.dumps(msg) + "\n")
        sys.stdout.flush()

    def reply(self, req, body):
        body = dict(body, in_reply_to=req["body"]["msg_id"])
        self.send(req["src"], body, src=req.get("dest"))

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def handle(self, req):
        body, kind = req["body"], req["body"]["type"]
        if "in_reply_to" in body:  # we never send requests, so nothing to match
            log("unexpected reply dropped:", body)
        elif kind == "replicate":  # another node's write or cas; one-way, never answered
            if is_int(body.get("key")) and is_int(body.get("value")):
                self.kv[body["key"]] = body["value"]
            else:
                log("bad replicate dropped:", body)
        elif not is_int(body.get("msg_id")):  # a request we could not answer
            log("request without msg_id dropped:", body)
        elif kind == "init":
            ids = body.get("node_ids")
            if not isinstance(body.get("node_id"), str) or not isinstance(ids, list) or not ids:
                return self.error(req, 12, "init needs node_id and node_ids")
            self.node_id, self.node_ids = body["node_id"], [str(n) for n in ids]
            log("init", self.node_id, self.node_ids)
            self.reply(req, {"type": "init_ok"})
        elif kind not in FIELDS:
            self.error(req, 10, "unsupported message type %r" % kind)
        elif self.node_id is None:
            self.error(req, 11, "node not initialised yet")
        elif not all(is_int(body.get(f)) for f in FIELDS[kind]):
            self.error(req, 12, "%s needs integer %s" % (kind, ", ".join(FIELDS[kind])))
        else:
            self.client_request(req, kind, body)

    def client_request(self, req, kind, body):
        """Serve read/write/cas from the local copy; gossip any change."""
        key = body["key"]
        if kind == "write":
            self.kv[key] = body["value"]
            self.broadcast(key, body["value"])
            self.reply(req, {"type": "write_ok"})
        elif key not in self.kv:
            self.error(req, 20, "key %d does not exist" % key)
        elif kind == "read":
            self.reply(req, {"type": "read_ok", "value": self.kv[key]})
        elif self.kv[key] != body["from"]:
            self.error(req, 22, "expected %d, found %d" % (body["from"], self.kv[key]))
        else:
            self.kv[key] = body["to"]
            self.broadcast(key, body["to"])
            self.reply(req, {"type": "cas_ok"})

    def broadcast(self, key, value):
        for other in self.node_ids:
            if other != self.node_id:
                self.send(other, {"type": "replicate", "key": key, "value": value})


def parse(line):
    """Return the message, or None if it is not a usable Maelstrom message."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    ok = (isinstance(msg, dict) and isinstance(msg.get("src"), str)
          and isinstance(msg.get("body"), dict) and isinstance(msg["body"].get("type"), str))
    return msg if ok else None


def main():
    node = Node()
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        msg = parse(line)
        if msg is None:
            log("ignoring malformed line:", line[:200])
            continue
        try:
            node.handle(msg)
        except Exception as e:  # never die on a body we do not understand
            log("error handling", msg, repr(e))
            body = msg["body"]
            if "in_reply_to" not in body and is_int(body.get("msg_id")):
                node.error(msg, 13, "internal error: %r" % e)  # 13 = crash


if __name__ == "__main__":
    main()

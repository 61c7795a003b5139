#!/usr/bin/python3
"""pprof_encode.py - writes a pprof profile with an independent encoder (Google's Python
protobuf, with the message classes built at run time from the public pprof schema, no protoc
and none of memsnap's code), then prints the canonical summary of what it wrote, computed from
its own data, for tests/unit/test_profile.c to compare with what memsnap's reader sees.

It writes what other tools write and memsnap never does: ids that are neither sequential nor
in order, locations before the functions they use and after the samples that use them,
several lines per location, a location with only an address, a mapping, comments,
drop_frames, labels memsnap ignores, repeated numbers both packed and unpacked, no memsnap
metadata. Usage: pprof_encode.py OUT_FILE [--raw] [SEED]   (gzip unless --raw)
"""
import gzip
import random
import sys

from google.protobuf import descriptor_pb2, message_factory

F = descriptor_pb2.FieldDescriptorProto


def schema():
    """The public pprof messages (github.com/google/pprof proto/profile.proto), field numbers
    as published. Sample.value is declared unpacked so that both encodings of a repeated
    number reach the reader (location_id stays packed, proto3's default)."""
    fd = descriptor_pb2.FileDescriptorProto(name="pprof_check.proto", package="perftools.profiles",
                                            syntax="proto3")
    messages = {
        "Profile": [("sample_type", 1, F.TYPE_MESSAGE, "ValueType", True),
                    ("sample", 2, F.TYPE_MESSAGE, "Sample", True),
                    ("mapping", 3, F.TYPE_MESSAGE, "Mapping", True),
                    ("location", 4, F.TYPE_MESSAGE, "Location", True),
                    ("function", 5, F.TYPE_MESSAGE, "Function", True),
                    ("string_table", 6, F.TYPE_STRING, None, True),
                    ("drop_frames", 7, F.TYPE_INT64, None, False),
                    ("keep_frames", 8, F.TYPE_INT64, None, False),
                    ("time_nanos", 9, F.TYPE_INT64, None, False),
                    ("duration_nanos", 10, F.TYPE_INT64, None, False),
                    ("period_type", 11, F.TYPE_MESSAGE, "ValueType", False),
                    ("period", 12, F.TYPE_INT64, None, False),
                    ("comment", 13, F.TYPE_INT64, None, True),
                    ("default_sample_type", 14, F.TYPE_INT64, None, False)],
        "ValueType": [("type", 1, F.TYPE_INT64, None, False),
                      ("unit", 2, F.TYPE_INT64, None, False)],
        "Sample": [("location_id", 1, F.TYPE_UINT64, None, True),
                   ("value", 2, F.TYPE_INT64, None, True),
                   ("label", 3, F.TYPE_MESSAGE, "Label", True)],
        "Label": [("key", 1, F.TYPE_INT64, None, False), ("str", 2, F.TYPE_INT64, None, False),
                  ("num", 3, F.TYPE_INT64, None, False),
                  ("num_unit", 4, F.TYPE_INT64, None, False)],
        "Mapping": [("id", 1, F.TYPE_UINT64, None, False),
                    ("memory_start", 2, F.TYPE_UINT64, None, False),
                    ("memory_limit", 3, F.TYPE_UINT64, None, False),
                    ("file_offset", 4, F.TYPE_UINT64, None, False),
                    ("filename", 5, F.TYPE_INT64, None, False),
                    ("build_id", 6, F.TYPE_INT64, None, False),
                    ("has_functions", 7, F.TYPE_BOOL, None, False)],
        "Location": [("id", 1, F.TYPE_UINT64, None, False),
                     ("mapping_id", 2, F.TYPE_UINT64, None, False),
                     ("address", 3, F.TYPE_UINT64, None, False),
                     ("line", 4, F.TYPE_MESSAGE, "Line", True),
                     ("is_folded", 5, F.TYPE_BOOL, None, False)],
        "Line": [("function_id", 1, F.TYPE_UINT64, None, False),
                 ("line", 2, F.TYPE_INT64, None, False)],
        "Function": [("id", 1, F.TYPE_UINT64, None, False), ("name", 2, F.TYPE_INT64, None, False),
                     ("system_name", 3, F.TYPE_INT64, None, False),
                     ("filename", 4, F.TYPE_INT64, None, False),
                     ("start_line", 5, F.TYPE_INT64, None, False)],
    }
    for name, fields in messages.items():
        m = fd.message_type.add(name=name)
        for fname, num, ftype, tname, repeated in fields:
            f = m.field.add(name=fname, number=num, type=ftype,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if tname:
                f.type_name = ".perftools.profiles." + tname
            if name == "Sample" and fname == "value":
                f.options.packed = False
    return message_factory.GetMessages([fd])["perftools.profiles.Profile"]


def main():
    out = sys.argv[1]
    raw = "--raw" in sys.argv[2:]
    seeds = [a for a in sys.argv[2:] if a != "--raw"]
    rnd = random.Random(int(seeds[0]) if seeds else 7)
    Profile = schema()
    p = Profile()
    strings = [""]

    def s(text):
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    def unique_ids(n):
        ids = set()
        while len(ids) < n:
            ids.add(rnd.choice([rnd.randrange(1, 100), rnd.randrange(1, 1 << 63)]))
        ids = list(ids)
        rnd.shuffle(ids)
        return ids

    types = [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_space", "bytes")]
    for t, u in types:
        p.sample_type.add(type=s(t), unit=u and s(u))
    p.default_sample_type = s("alloc_space")
    p.period_type.type = s("space")
    p.period_type.unit = s("bytes")
    p.period = 524288
    p.time_nanos = 1690000000000000000 + rnd.randrange(1 << 40)
    p.duration_nanos = rnd.randrange(1 << 40)
    p.comment.extend([s("written by pprof_encode.py"), s("ünïcode comment")])
    p.drop_frames = s("runtime\\..*")
    p.mapping.add(id=9, memory_start=0x400000, memory_limit=0x800000, filename=s("/usr/bin/x"),
                  has_functions=True)

    # Functions, with ids that are random and unordered.
    fn_ids = unique_ids(25)
    functions = {}
    for k, fid in enumerate(fn_ids):
        name = rnd.choice(["handle", "load_数据", "<module>", "Émile.run", "λ"]) + str(k)
        fname = rnd.choice(["/srv/app.py", "/usr/lib/python3/dist-packages/x/y.py", "🐍.py"])
        functions[fid] = (name, fname, rnd.randrange(1, 5000))

    # Locations: one to three lines (inlined first, caller last), one with only an address.
    loc_ids = unique_ids(40)
    locations = {}
    for k, lid in enumerate(loc_ids):
        if k == 5:
            locations[lid] = (0xdeadbeef, [])
            continue
        lines = [(rnd.choice(fn_ids), rnd.randrange(1, 9000)) for _ in range(rnd.randrange(1, 4))]
        locations[lid] = (rnd.randrange(1 << 48), lines)

    threads = ["", "MainThread", "worker-1", "пул-2"]
    samples = []
    for _ in range(150):
        stack = [rnd.choice(loc_ids) for _ in range(rnd.randrange(0, 12))]
        values = [rnd.randrange(-(1 << 62), 1 << 62), rnd.randrange(0, 1 << 20), rnd.randrange(-5, 5)]
        samples.append((stack, values, rnd.choice(threads), rnd.choice([0, 0, 32, 1 << 40])))
    # A recursive stack: the same location over and over.
    samples.append(([loc_ids[1]] * 50, [1, 2, 3], "MainThread", 0))

    for stack, values, thread, block in samples:
        m = p.sample.add(location_id=stack, value=values)
        if thread:
            m.label.add(key=s("thread"), str=s(thread))
        if block:
            m.label.add(key=s("bytes"), num=block, num_unit=s("bytes"))
        m.label.add(key=s("request"), str=s("GET /"))  # a label memsnap ignores
    for lid in loc_ids:
        address, lines = locations[lid]
        loc = p.location.add(id=lid, address=address, mapping_id=9)
        for fid, line in lines:
            loc.line.add(function_id=fid, line=line)
    for fid in fn_ids:
        name, fname, start = functions[fid]
        p.function.add(id=fid, name=s(name), filename=s(fname), start_line=start,
                       system_name=s("sys_" + name))
    p.string_table.extend(strings)

    data = p.SerializeToString()
    # Put samples last: readers must resolve ids defined after their use and before it.
    tail = Profile()
    tail.sample.extend(p.sample)
    del p.sample[:]
    data = p.SerializeToString() + tail.SerializeToString()
    with open(out, "wb") as f:
        f.write(data if raw else gzip.compress(data))

    def frame(lid):
        address, lines = locations[lid]
        if not lines:
            return "0x%x@:0" % address
        return "+".join("%s@%s:%d" % (functions[f][0], functions[f][1], ln) for f, ln in lines)

    print("types " + ",".join("%s/%s" % t for t in types))
    print("default alloc_space")
    print("period space/bytes %d" % p.period)
    print("time %d %d" % (p.time_nanos, p.duration_nanos))
    for stack, values, thread, block in samples:
        print("sample %s thread=%s bytes=%d stack=%s" % (",".join(map(str, values)), thread, block,
                                                         ";".join(frame(l) for l in stack)))
    for c in p.comment:
        print("comment " + strings[c])


if __name__ == "__main__":
    main()

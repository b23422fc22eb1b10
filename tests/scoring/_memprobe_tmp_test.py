import resource
import tests.scoring.test_archive_fuzz as f
orig = f.check_and_extract
jumps = []
def wrapped(source, expected, dest):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r = orig(source, expected, dest)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if after - before > 5000:
        jumps.append((after - before, source.read_bytes(), r.summary()[:300]))
    return r
f.check_and_extract = wrapped
def test_probe():
    f.test_hostile_archives_never_crash()
    print("\nrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024, "jumps in check:", [(j[0], len(j[1])) for j in jumps])
    for j in jumps[:3]:
        print(j[2])
    if jumps:
        open("/tmp/worst.zip","wb").write(max(jumps, key=lambda j: j[0])[1])

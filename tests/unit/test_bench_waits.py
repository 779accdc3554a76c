"""The benches count a server's waits (bench/servers.py, ``waits``): the voluntary context switches of every thread
of a process and of its children, which a thread woken for nothing adds to as much as one that blocks."""
import subprocess
import sys

from bench import servers

CHILD = """
import sys, threading, time
done = threading.Event()
slept = threading.Barrier(4)
def sleeper():
    for _ in range(100):
        time.sleep(0.001)  # each a voluntary switch
    slept.wait()
    done.wait()  # alive while the parent counts: a thread that ended is no longer counted
sys.stdin.readline()
threads = [threading.Thread(target=sleeper) for _ in range(3)]
for thread in threads:
    thread.start()
slept.wait()
print("slept", flush=True)
sys.stdin.readline()
done.set()
"""


def test_the_threads_of_a_process_that_block_are_counted():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        before = servers.waits(child.pid)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline() == "slept\n"
        assert servers.waits(child.pid) - before >= 300
    finally:
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait(10)

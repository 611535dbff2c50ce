"""explorer.allocator: importing the package keeps freed memory in glibc's heap for reuse (a network pass's
large blocks are not mapped afresh from the kernel and faulted in at every layer)."""

import subprocess
import sys
import textwrap

import pytest

from explorer.allocator import keep_freed_memory

# In a fresh process: allocate an 8 MB tensor, and print whether glibc served it by mmap (a new mapped block).
MAPPED = textwrap.dedent("""
    import ctypes, sys
    {setup}
    import torch
    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                     "keepcost")]
    mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    mallinfo2.restype = MallInfo2
    before = mallinfo2().hblks
    block = torch.ones(2_000_000)
    print(mallinfo2().hblks - before)
""")


def mapped_blocks(setup: str) -> int:
    out = subprocess.run([sys.executable, "-c", MAPPED.format(setup=setup)], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


def glibc_with_mallinfo2() -> bool:
    import ctypes
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not glibc_with_mallinfo2(), reason="glibc ≥ 2.33 (mallinfo2) is needed to see where blocks come from")
def test_importing_explorer_serves_large_blocks_from_the_heap():
    assert mapped_blocks("pass") == 1  # glibc's default: an 8 MB block is mapped from the kernel
    assert mapped_blocks("import explorer") == 0  # kept in the heap for reuse


def test_keep_freed_memory_says_whether_it_took_effect():
    took = keep_freed_memory()
    if glibc_with_mallinfo2():  # glibc: it takes effect
        assert took is True
    assert keep_freed_memory() == took  # again: nothing changes

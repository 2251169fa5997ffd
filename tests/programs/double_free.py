"""A real double free: ``PyMem_Free`` twice on one block, through ``ctypes.pythonapi``.

pymalloc does not notice: the second free links the block to itself on its pool's free
list, so the program repairs the list afterwards (the link the first free wrote is put back)
and exits normally. Prints the block's address.
"""

import ctypes
import json

api = ctypes.pythonapi
api.PyMem_Malloc.restype = ctypes.c_void_p
api.PyMem_Malloc.argtypes = [ctypes.c_size_t]
api.PyMem_Free.restype = None
api.PyMem_Free.argtypes = [ctypes.c_void_p]
SIZE = 440  # a size class little else uses: nothing takes the block between the frees


def allocate():
    return api.PyMem_Malloc(SIZE)


def free_once(address):
    api.PyMem_Free(address)


def free_again(address):
    api.PyMem_Free(address)


block = allocate()
free_once(block)
link = ctypes.c_void_p.from_address(block).value  # the free list's link the free wrote
free_again(block)
ctypes.c_void_p.from_address(block).value = link  # the block is on the free list once again
print(json.dumps({"address": block}))

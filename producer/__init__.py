"""The traced side: allocator hooks (C), the Python API and the batch publisher."""

"""`cpworker bench`: the real operator against the local stand-ins, measured.

Test and documentation infrastructure like `cpworker.sandbox`: it sits above the stand-ins in
the import layers, nothing imports it, and the operator image leaves it out.
"""

# heavy.py - a module whose import holds memory (a table built by its body): the subtree the
# diff must show as gone once app.py stops importing it.
TABLE = ["row %d of the heavy table" % i for i in range(60000)]

import six

six.print_("report: ready")

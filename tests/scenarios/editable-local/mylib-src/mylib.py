import six

GREETING = "trained " + six.text_type("fine")

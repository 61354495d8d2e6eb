"""OpenRosa 1.0 for stock ODK Collect and KoboCollect (SPEC §7): the form table (``fields``),
the XForms rendered from it (``xforms``), instances read back with it (``instances``), the
streaming submission reader (``multipart``), OpenRosa answers (``responses``) and the routes
(``controller``)."""

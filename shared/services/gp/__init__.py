"""GP practices: patient-list uploads, the register check, invitations and booking at the practice."""

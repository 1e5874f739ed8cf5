"""acme.nutanix: opsrun modules for Nutanix VMs and images (Prism v3 REST API)."""

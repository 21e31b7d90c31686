console.log("shapes");
